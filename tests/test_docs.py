"""The docs site builds with warnings as errors (`make docs`), and a broken link fails it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import REPO


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`make docs`'s command on ``source``."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    return subprocess.run([*cmd, str(source), str(out)], capture_output=True, text=True)


@pytest.mark.slow  # imports the whole library (torch, Great Expectations) for the API pages
def test_docs_build_clean(tmp_path: Path) -> None:
    result = sphinx_build(REPO / "docs", tmp_path / "html")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "html/api.html").is_file()


def test_a_broken_link_or_heading_fails_the_build(tmp_path: Path) -> None:
    """The pages without the API reference (fast), with a link to a missing page and one to a
    missing heading planted: both are named, and the build fails."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs, ignore=shutil.ignore_patterns("_build", "api.md"))
    index = docs / "index.md"
    index.write_text(index.read_text().replace("\napi\n", "\n"))
    assert sphinx_build(docs, tmp_path / "clean").returncode == 0
    page = docs / "training.md"
    page.write_text(
        page.read_text() + "\nSee [the guide](no-such-page.md) and [this](training.md#nowhere).\n"
    )
    result = sphinx_build(docs, tmp_path / "broken")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr and "nowhere" in result.stderr, result.stderr
