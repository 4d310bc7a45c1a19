"""The prepared GPU check in its CPU smoke form, on a Python without the project's heavier
dependencies (as on the bare CUDA machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import REPO

ABSENT = ("pydantic", "mlflow", "dvc", "PIL", "matplotlib", "torchvision", "onnxscript")


@pytest.mark.slow  # a subprocess that trains
def test_smoke_form_writes_the_json_without_pydantic_mlflow_or_dvc(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    # Each absent package: an import of it fails, as where it is not installed.
    code = (
        "import runpy, sys\n"
        f"for name in {ABSENT!r}:\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['gpu_check.py', '--smoke', '--out', {str(out)!r}]\n"
        f"runpy.run_path({str(REPO / 'benchmarks/gpu_check.py')!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["hw"] == [64, 80]
    run = report["train"][0]
    assert run["images_per_s"] > 0 and run["syncs_per_step"] == 0
    assert report["short_training"]["steps"] >= 1
    assert report["predict"]["torch_images_per_s"] > 0
    assert report["gflop_per_image_step"] > 0
