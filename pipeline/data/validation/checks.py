"""Validate processed train/test HDF5 files with Great Expectations before any GPU time is spent.

Each file is streamed once into a table with one row per image (``stats.image_stats``),
and GX suites defined in code check those tables: row counts and image indices match
``splits.mat``, train and test are disjoint, depth has no NaN/inf and lies in
``[min_depth, max_depth]``, enough pixels carry a depth, no RGB image is blank, RGB and depth
shapes agree. The result is a JSON-ready dict (``report`` writes the files and the
printed summary).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from pipeline.config import ValidateConfig
from pipeline.data.validation.stats import depth_datasets, image_stats, number, split_statistics

SPLITS = ("train", "test")


def _suite(name: str, expectations: list[gxe.Expectation]) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite


def split_suite(
    split: str, expected: Sequence[int], cfg: ValidateConfig, origin: str = "splits.mat"
) -> gx.ExpectationSuite:
    """The expectations on one split's table; each carries the sentence the report shows.

    ``origin`` names where ``expected`` comes from (the raw frame list for raw train images)."""
    between = gxe.ExpectColumnValuesToBeBetween
    lo, hi = f"{cfg.min_depth:g}", f"{cfg.max_depth:g}"
    checks: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToEqual(
            value=len(expected), description=f"{len(expected)} images, as in {origin}"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="index",
            value_set=[int(i) for i in expected],
            description=f"every image index belongs to the {split} split of {origin}",
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="rgb_h", column_B="depth_h", description="RGB and depth heights agree"
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="rgb_w", column_B="depth_w", description="RGB and depth widths agree"
        ),
        between(
            column="rgb_std_max",
            min_value=0,
            strict_min=True,
            description="RGB image is not blank (some channel has std > 0)",
        ),
    ]
    for d in depth_datasets(split):
        checks += [
            between(column=f"{d}_nan", min_value=0, max_value=0, description=f"{d} has no NaN"),
            between(column=f"{d}_inf", min_value=0, max_value=0, description=f"{d} has no inf"),
            between(
                column=f"{d}_min",
                min_value=cfg.min_depth,
                mostly=cfg.mostly,
                description=f"{d} min >= {lo} m (mostly {cfg.mostly:g})",
            ),
            between(
                column=f"{d}_max",
                max_value=cfg.max_depth,
                mostly=cfg.mostly,
                description=f"{d} max <= {hi} m (mostly {cfg.mostly:g})",
            ),
            between(
                column=f"{d}_valid_fraction",
                min_value=cfg.min_valid_fraction,
                description=f"fraction of {d} pixels > 0 is >= {cfg.min_valid_fraction:g}",
            ),
        ]
    return _suite(split, checks)


def disjoint_suite() -> gx.ExpectationSuite:
    """On train and test stacked: no image index appears twice (so the splits are disjoint)."""
    unique = gxe.ExpectColumnValuesToBeUnique(
        column="index", description="train and test image indices are disjoint and unique"
    )
    return _suite("train+test", [unique])


def _ephemeral_context() -> AbstractDataContext:
    # In memory, no analytics, no progress bars: nothing on disk or the network, quiet logs.
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _outcome(result: Any, cap: int) -> dict[str, Any]:
    """One expectation's result as plain JSON: what, where, pass/fail, which images."""
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or "/".join(
        kwargs[k] for k in ("column_A", "column_B") if k in kwargs
    )
    details = result.result or {}
    offending = sorted({int(row["index"]) for row in details.get("unexpected_index_list") or []})
    outcome = {
        "expectation": config.type,
        "column": column or None,
        "description": config.description,
        "success": bool(result.success),
        "unexpected_count": int(details.get("unexpected_count", 0)),
        "offending_indices": offending[:cap],
    }
    if "observed_value" in details:
        outcome["observed_value"] = number(details["observed_value"])
    if result.exception_info.get("raised_exception"):
        outcome["error"] = result.exception_info.get("exception_message")
    return outcome


def validate_tables(
    tables: Mapping[str, pd.DataFrame],
    expected: Mapping[str, Sequence[int]],
    cfg: ValidateConfig,
    raw_frames: str | None = None,
) -> dict[str, Any]:
    """Run the suites on per-split tables from ``image_stats``; return the JSON-ready report.

    ``raw_frames`` (the frame list's name): the train split holds raw frames, whose unfilled
    depth is held to ``cfg.raw_min_valid_fraction`` instead of ``cfg.min_valid_fraction``."""
    context = _ephemeral_context()
    source = context.data_sources.add_pandas(name="processed")
    suites_of = {split: split_suite(split, expected[split], cfg) for split in SPLITS}
    if raw_frames is not None:
        raw_cfg = cfg.model_copy(update={"min_valid_fraction": cfg.raw_min_valid_fraction})
        suites_of["train"] = split_suite("train", expected["train"], raw_cfg, raw_frames)
    runs = [(split, suites_of[split], tables[split]) for split in SPLITS]
    stacked = pd.concat([tables[s][["index", "split"]] for s in SPLITS], ignore_index=True)
    runs.append(("train+test", disjoint_suite(), stacked))
    result_format = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": ["index"],
        "return_unexpected_index_query": False,
    }
    suites: dict[str, Any] = {}
    for name, suite, table in runs:
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
        definition = gx.ValidationDefinition(name=name, data=batch, suite=context.suites.add(suite))
        result = context.validation_definitions.add(definition).run(
            batch_parameters={"dataframe": table}, result_format=result_format
        )
        outcomes = [_outcome(r, cfg.max_reported_indices) for r in result.results]
        suites[name] = {"success": bool(result.success), "expectations": outcomes}
    failures = [
        {"suite": name, **outcome}
        for name, suite in suites.items()
        for outcome in suite["expectations"]
        if not outcome["success"]
    ]
    return {
        "success": not failures,
        "failures": failures,
        "suites": suites,
        "statistics": {split: split_statistics(tables[split], split) for split in SPLITS},
        "thresholds": cfg.model_dump(),
        "great_expectations_version": gx.__version__,
    }


def validate_processed(
    train_h5: Path,
    test_h5: Path,
    expected: Mapping[str, Sequence[int]],
    cfg: ValidateConfig,
    progress: bool = True,
    raw_frames: str | None = None,
) -> dict[str, Any]:
    """Validate a processed train/test pair against the expected image indices of each split.

    ``expected`` maps "train" and "test" to the 0-based image indices the split should hold
    (from ``splits.mat``, or for train the raw frame list named ``raw_frames``). Raises
    ``ProcessedDataError`` when a file cannot be read at all; data problems are reported, not
    raised: ``report["success"]`` is False and ``report["failures"]`` names each failed
    expectation with the offending image indices (at most ``cfg.max_reported_indices``).
    """
    paths = {"train": Path(train_h5), "test": Path(test_h5)}
    tables = {split: image_stats(path, split, progress) for split, path in paths.items()}
    report = validate_tables(tables, expected, cfg, raw_frames)
    report["files"] = {split: str(path) for split, path in paths.items()}
    return report
