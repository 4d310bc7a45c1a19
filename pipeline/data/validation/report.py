"""Files and text made from a validation report (``checks.validate_processed``).

The JSON is the machine-readable record DVC tracks; the HTML is one self-contained page (no
external CSS or JS) a person can open offline; the summary is what the stage prints.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from pipeline.io import atomic_outputs, writing

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
.pass { color: #176317; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
code { font-size: 0.9em; }
"""


def _name(outcome: dict[str, Any]) -> str:
    column = outcome.get("column")
    return f"{outcome['expectation']}({column})" if column else outcome["expectation"]


def summarize(report: dict[str, Any]) -> str:
    """A few lines for the terminal: PASSED, or each failed expectation and its first images."""
    total = sum(len(suite["expectations"]) for suite in report["suites"].values())
    if report["success"]:
        counts = " + ".join(f"{s['images']} {split}" for split, s in report["statistics"].items())
        return f"validation PASSED: {total} expectations on {counts} images"
    lines = [f"validation FAILED: {len(report['failures'])} of {total} expectations failed"]
    for failure in report["failures"]:
        line = f"  [{failure['suite']}] {_name(failure)}: {failure['description']}"
        if failure["offending_indices"]:
            line += (
                f"; {failure['unexpected_count']} image(s), "
                f"first 0-based image indices {failure['offending_indices']}"
            )
        elif "observed_value" in failure:
            line += f"; observed {failure['observed_value']}"
        if "error" in failure:
            line += f"; error: {failure['error']}"
        lines.append(line)
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """HTML table from already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _status(success: bool) -> str:
    return '<span class="pass">PASS</span>' if success else '<span class="fail">FAIL</span>'


def _flatten(stats: dict[str, Any], prefix: str = "") -> list[list[str]]:
    rows: list[list[str]] = []
    for key, value in stats.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append([escape(f"{prefix}{key}"), escape(str(value))])
    return rows


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page; every value from the data is escaped."""
    parts = [
        f"<h1>Data validation: {_status(report['success'])}</h1>",
        f"<pre>{escape(summarize(report))}</pre>",
    ]
    files = report.get("files", {})
    for name, suite in report["suites"].items():
        where = f" &mdash; <code>{escape(files[name])}</code>" if name in files else ""
        parts.append(f"<h2>{escape(name)}: {_status(suite['success'])}{where}</h2>")
        rows = [
            [
                _status(o["success"]),
                f"<code>{escape(_name(o))}</code>",
                escape(o["description"] or ""),
                escape(str(o.get("observed_value", o["unexpected_count"]))),
                escape(", ".join(map(str, o["offending_indices"]))),
            ]
            for o in suite["expectations"]
        ]
        header = [
            "status",
            "expectation",
            "meaning",
            "observed / unexpected",
            "offending images (0-based indices)",
        ]
        parts.append(_table(header, rows))
    for split, stats in report["statistics"].items():
        parts.append(f"<h2>Statistics: {escape(split)}</h2>")
        parts.append(_table(["statistic", "value"], _flatten(stats)))
    parts.append("<h2>Thresholds (params.yaml validate.*)</h2>")
    parts.append(_table(["key", "value"], _flatten(report["thresholds"])))
    version = escape(str(report.get("great_expectations_version")))
    parts.append(f"<p>Great Expectations {version}</p>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Data validation</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(report: dict[str, Any], json_path: Path, html_path: Path) -> None:
    """Write the JSON and the HTML page, published together (never half a report, nor a new
    JSON beside the HTML of an older run)."""
    with atomic_outputs(json_path, html_path) as (json_tmp, html_tmp):
        with writing(json_tmp):
            json_tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        with writing(html_tmp):
            html_tmp.write_text(render_html(report))
