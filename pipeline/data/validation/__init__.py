"""Validation of the processed HDF5 files, grouped by concern:

- :mod:`~.stats`: one streaming pass over a file into a table of per-image statistics;
- :mod:`~.checks`: the Great Expectations suites run on those tables, and the report they make;
- :mod:`~.report`: the report's JSON and HTML files and the summary the stage prints.
"""

from pipeline.data.validation.checks import validate_processed, validate_tables
from pipeline.data.validation.report import render_html, summarize, write_report
from pipeline.data.validation.stats import ProcessedDataError, image_stats

__all__ = [
    "ProcessedDataError",
    "image_stats",
    "render_html",
    "summarize",
    "validate_processed",
    "validate_tables",
    "write_report",
]
