"""`pipeline.portable` in this (unpinned) process; the pinned stages are tested end to end in
test_train_e2e.py (tools/portable_check.py against tests/data/portable_tiny.json)."""

from __future__ import annotations

import os

import pytest
import torch

from pipeline import portable

CPU = torch.device("cpu")


def test_native_mode_pins_nothing_and_says_its_bytes_follow_the_cpu() -> None:
    portable.pin("native")  # returns: no re-execution in native mode
    kernels = portable.check("native", CPU)
    assert kernels["reproducible"] == "native"
    assert kernels["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert kernels["bytes_follow"].startswith("this CPU kind")
    assert kernels["mkl_cbwr"] == os.environ.get("MKL_CBWR", "native")


def test_portable_mode_refuses_a_process_whose_kernels_are_not_pinned() -> None:
    """This test process was started without the pins: on a CPU past AVX2 its kernels are not
    the portable ones, and a portable run must stop rather than write other bytes."""
    if torch.backends.cpu.get_cpu_capability() == "AVX2":
        pytest.skip("an AVX2-only CPU runs the pinned kernels anyway")
    threads = torch.get_num_threads()  # check sets the portable count first: restored after
    try:
        with pytest.raises(ValueError, match="needs an x86-64 CPU with AVX2 and the pins"):
            portable.check("portable", CPU)
    finally:
        torch.set_num_threads(threads)
