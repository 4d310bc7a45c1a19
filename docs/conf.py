"""Sphinx configuration of the docs site: Markdown pages (MyST), the furo theme, and an API
reference of `pipeline/` from its docstrings. Built by `make docs` with warnings as errors."""

project = "FCRN depth pipeline"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
html_theme = "furo"
html_title = project
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # `[text](page.md#a-heading)` links resolve, and are checked
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# MLflow's import fails under autodoc (its FastAPI models and Sphinx's import hooks); the pages
# of tracking, registry and serving need only its names.
autodoc_mock_imports = ["mlflow"]
