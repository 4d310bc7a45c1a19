"""`dvc repro` through training and evaluation in a real git + DVC repo, on a tiny config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest
from e2e import REPO, TINY, closed_url, copy_project, edited_params, env, run, stage_argv

from pipeline.io import md5sum

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(reproduced: Path, module_tmp: Callable[[str], Path]) -> Path:
    root = copy_project(reproduced, module_tmp("train") / "project")
    run(["dvc", "repro"], root)  # register, into the copy's own store
    return root


def kill_after_first_checkpoint(cmd: list[str], cwd: Path, ckpts: Path) -> None:
    """Start ``cmd`` and SIGKILL its whole process group once an epoch checkpoint exists."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list(ckpts.glob("train-*.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before its first checkpoint was seen"
        time.sleep(0.05)
    assert proc.poll() is None, "too late: training had already finished"
    # torchrun starts each DDP rank in a session of its own, out of the group: they must die
    # with it (runtime.die_with_launcher), not train on beside the run that resumes.
    ranks = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(ranks, timeout=10)  # at once: the kernel kills them
    assert not alive, f"processes outlived the killed group: {alive}"


def model_and_metrics(project: Path) -> tuple[str, str]:
    return md5sum(project / "models/fcrn.pt"), (project / "reports/metrics.json").read_text()


def test_repro_trains_evaluates_and_reproduces_bit_for_bit(project: Path) -> None:
    first = model_and_metrics(project)
    metrics = json.loads(first[1])
    assert metrics["protocol"] == "laina"
    assert {"laina", "eigen", "crop", "baseline"} <= metrics.keys()
    for name in ("train_log.csv", "predictions.png", "train_curves.png", "train_speed.json"):
        assert (project / "reports" / name).is_file()
    registration = json.loads((project / "reports/registration.json").read_text())
    assert registration["version"] == 1 and registration["decision"] == "champion"
    again = run(["dvc", "repro"], project).stdout
    assert "Running stage 'train'" not in again and "Running stage 'evaluate'" not in again
    assert "already holds this model" in again  # register always asks the store (README)

    run(["dvc", "repro", "--single-item", "--force", "train"], project)  # not the data stages too
    run(["dvc", "repro"], project)
    assert model_and_metrics(project) == first
    assert not list((project / "checkpoints").glob("train-*")), "a finished run leaves none"


def test_run_killed_mid_training_resumes_to_the_same_weights(project: Path) -> None:
    run(["dvc", "repro", "train"], project)
    expected = md5sum(project / "models/fcrn.pt")
    ckpts = project / "checkpoints"
    with edited_params(project):
        train = ["dvc", "repro", "--single-item", "--force", "train"]
        kill_after_first_checkpoint(train, project, ckpts)
        assert list(ckpts.glob("train-*.pt")), "the epoch checkpoint survives the kill"
        resumed = run(["dvc", "repro", "train"], project)
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert md5sum(project / "models/fcrn.pt") == expected
    assert not list(ckpts.glob("*train-*"))
    assert not [p.name for p in (project / "models").iterdir() if p.name != "fcrn.pt"]


def test_nan_in_training_data_stops_training_with_a_named_error(project: Path) -> None:
    run(["dvc", "repro", "train"], project)
    train_h5 = project / "data/processed/train.h5"
    pristine = train_h5.read_bytes()
    try:
        train_h5.unlink()  # DVC may have linked it to the cache: never write through the link
        train_h5.write_bytes(pristine)
        with h5py.File(train_h5, "r+") as f:
            depth = f["depth"][()]
            depth[:, 5:9, 5:9] = np.nan
            f["depth"][...] = depth
        result = run(["dvc", "repro", "--single-item", "--force", "train"], project, check=False)
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors and "epoch 1, step 1: non-finite RGB or depth" in errors[0], result.stderr
        assert "Traceback" not in result.stderr
    finally:
        train_h5.unlink()
        train_h5.write_bytes(pristine)


def _ddp_args(out: str) -> list[str]:
    return ["python", *stage_argv("train")[:2], f"{out}/fcrn.pt", f"{out}/train_log.csv",
            f"{out}/speed.json", f"{out}/checkpoints"]  # fmt: skip


def test_two_process_ddp_run_on_cpu_resumes_after_a_kill(project: Path) -> None:
    """gloo DDP with 2 CPU processes: equal replicas (BatchNorm's statistics included), one
    checkpoint (rank 0), and a run killed after it resumes to the uninterrupted run's bytes."""
    run(["dvc", "repro", "train"], project)
    ckpts = project / "ddp/checkpoints"
    with edited_params(project, {"train.nproc": 2, "train.epochs": 3}):
        whole = run(_ddp_args("ddp-whole"), project)
        kill_after_first_checkpoint(_ddp_args("ddp"), project, ckpts)
        assert len(list(ckpts.glob("train-*.pt"))) == 1
        resumed = run(_ddp_args("ddp"), project)
    out = resumed.stdout + resumed.stderr
    assert "resuming from" in out
    for log in (whole.stdout, resumed.stdout):
        assert "DDP: all 2 ranks hold identical weights" in log
    assert md5sum(project / "ddp/fcrn.pt") == md5sum(project / "ddp-whole/fcrn.pt")
    assert not list(ckpts.glob("*train-*"))
    speed = json.loads((project / "ddp/speed.json").read_text())
    assert speed["processes"] == 2


def test_unreachable_tracking_server_stops_training_in_seconds(project: Path) -> None:
    uri = closed_url()
    out = project / "dead"
    args = ["python", "stages/train.py", "data/processed/train.h5", f"{out}/fcrn.pt"]
    args += [f"{out}/log.csv", f"{out}/speed.json", f"{out}/checkpoints"]
    started = time.monotonic()
    result = subprocess.run(
        args, cwd=project, env={**env(), "MLFLOW_TRACKING_URI": uri}, text=True, capture_output=True
    )
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and uri in errors[0], result.stderr
    assert not out.exists(), "nothing trained, nothing written"


def _would_run(project: Path) -> set[str]:
    dry = run(["dvc", "repro", "--dry"], project).stdout
    return {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("pipeline/predict.py", {"register"}),  # no stage imports it; register always asks
        ("pipeline/data/augment.py", {"train", "evaluate", "register"}),
    ],
)
def test_an_edit_reruns_only_the_stages_that_import_it(
    project: Path, module: str, expected: set[str]
) -> None:
    """dvc.yaml's code deps are the imports: precise both ways (real `dvc status`)."""
    run(["dvc", "repro", "evaluate"], project)  # all but register, which always runs
    path = project / module
    original = path.read_text()
    try:
        path.write_text(original + "# an edit\n")
        status = json.loads(run(["dvc", "status", "--json"], project).stdout)
        assert set(status) == expected, status  # register: always changed
        assert _would_run(project) == expected
    finally:
        path.write_text(original)
    assert _would_run(project) == {"register"}


PORTABLE_FIXTURE = json.loads((REPO / "tests/data/portable_tiny.json").read_text())


def test_portable_mode_gives_the_committed_bytes_on_this_cpu(project: Path) -> None:
    """tools/portable_check.py on this CPU: the committed md5 of every output of a tiny portable
    training and evaluation (made on another CPU kind, see the file), or the pins leak. On an
    AVX512 CPU a native fp32 training differs from it: the pins do take effect."""
    run(["dvc", "repro", "train"], project)  # the data stages' outputs, made with TINY
    data = {k: v for k, v in TINY.items() if k.startswith("data.")}
    assert {k: PORTABLE_FIXTURE["params"][k] for k in data} == data  # what the fixture saw
    check = run(["python", str(REPO / "tools/portable_check.py"), "--project", "."], project, False)
    report = json.loads(check.stdout)
    assert (check.returncode, report["differ"]) == (0, []), (report, PORTABLE_FIXTURE["made_on"])
    speed = json.loads((project / "portable-check/speed.json").read_text())
    assert speed["reproducible"] == "portable" and speed["precision"] == "fp32"
    assert speed["cpu_capability"] == "AVX2" and speed["threads"] == "2"
    assert speed["bytes_follow"].startswith("nothing")
    if "avx512f" in Path("/proc/cpuinfo").read_text().split():
        native = {**PORTABLE_FIXTURE["params"], "train.reproducible": "native"}
        args = ["python", *stage_argv("train")[:2], "native/fcrn.pt", "native/log.csv"]
        with edited_params(project, {**native, "train.precision": "fp32"}):
            run([*args, "native/speed.json", "native/checkpoints"], project)
        assert md5sum(project / "native/fcrn.pt") != PORTABLE_FIXTURE["md5"]["model"]


def test_exp_run_with_other_lr_shows_both(project: Path) -> None:
    """Last in the module: it leaves the workspace at the experiment's outputs, which the
    tests before it would first have to retrain back to the default."""
    with edited_params(project):
        run(["dvc", "exp", "run", "-n", "lr-high", "-S", "train.lr=0.001"], project)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    text = json.dumps(shown)
    assert "lr-high" in text and "0.001" in text
