"""Does a tiny portable run give the committed bytes on this CPU, or on an emulated one?

`tests/data/portable_tiny.json` holds the params of a tiny run (tiny synthetic data, the real
ResNet-50 FCRN, `train.reproducible: portable`) and the md5 of every output DVC hashes for
training and evaluation: the model, the training log (its validation metrics), metrics.json and
both plots. This script makes that run and compares:

    python tools/portable_check.py                      # this CPU (~1 min)
    python tools/portable_check.py --cpu Haswell-v4     # an AVX2-only Intel CPU under QEMU
    python tools/portable_check.py --cpu EPYC-Rome      # an AVX2-only AMD CPU under QEMU

``--cpu`` runs the train and evaluate stages under `qemu-x86_64 -cpu MODEL` (Debian's
`qemu-user`; ~3 min each here): PyTorch then sees an AVX2 CPU of that vendor,
whatever this machine is. QEMU runs what a process executes natively, so the pins of
`pipeline.portable` go into the environment first (the stages' own re-execution would leave the
emulation). The data stages run natively: their bytes are checked at every NumPy dispatch
level by tests/test_synthetic.py. Prints one JSON document; exit status 1 when a hash differs.
``--project DIR`` reuses a project whose data stages ran with the fixture's params
(tests/test_train_e2e.py does); without it a copy of this checkout is made in a temp folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.params_file import set_params  # noqa: E402  (tools/ is not a package)
from pipeline.portable import PINS  # noqa: E402
from tools.check_lock import export  # noqa: E402

FIXTURE = REPO / "tests/data/portable_tiny.json"
OUT = "portable-check"  # beside the project's own outputs, never one of them
OUTPUTS = {  # fixture key -> file under OUT
    "model": "fcrn.pt",
    "train_log": "train_log.csv",
    "metrics": "reports/metrics.json",
    "predictions": "reports/predictions.png",
    "train_curves": "reports/train_curves.png",
}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if result.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd}:\n{result.stdout}{result.stderr}")


def make_project(dest: Path, changes: dict[str, object]) -> Path:
    """The tracked files of this checkout in a new git repo at ``dest``, with ``changes``, its
    data stages reproduced."""
    export(REPO, dest, "worktree")  # what a fresh clone of this checkout would hold
    set_params(dest / "params.yaml", changes)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "check"]):
        _run(cmd, dest)
    _run([str(Path(sys.executable).with_name("dvc")), "repro", "validate"], dest)
    return dest


def run_stages(project: Path, changes: dict[str, object], cpu: str | None) -> dict[str, str]:
    """Train and evaluate into ``project``/OUT with the fixture's params (restored after),
    under QEMU as ``cpu`` if given; the md5 of each output."""
    out = project / OUT
    shutil.rmtree(out, ignore_errors=True)
    prefix = ["qemu-x86_64", "-cpu", cpu] if cpu else []
    python = [*prefix, sys.executable]
    env = {**os.environ, **PINS, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    train = ["stages/train.py", "data/processed/train.h5", f"{OUT}/fcrn.pt"]
    train += [f"{OUT}/train_log.csv", f"{OUT}/speed.json", f"{OUT}/checkpoints"]
    evaluate = ["stages/evaluate.py", f"{OUT}/fcrn.pt", "data/processed/test.h5"]
    evaluate += ["data/processed/train.h5", f"{OUT}/train_log.csv", f"{OUT}/reports"]
    params = project / "params.yaml"
    original = params.read_text()
    set_params(params, changes)
    try:
        _run([*python, *train], project, env)
        _run([*python, *evaluate], project, env)
    finally:
        params.write_text(original)
    return {k: hashlib.md5((out / f).read_bytes()).hexdigest() for k, f in OUTPUTS.items()}


def describe_cpu() -> str:
    """The model name and the ISA flags that decide PyTorch's kernels, from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "")
    flags = set(info.split())
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name or platform.machine()} ({' '.join(have)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", help="QEMU CPU model to emulate, e.g. Haswell-v4, EPYC-Rome")
    parser.add_argument("--project", type=Path, help="a project whose data stages ran")
    args = parser.parse_args()
    if args.cpu and not shutil.which("qemu-x86_64"):
        sys.exit("error: qemu-x86_64 not found: install Debian's qemu-user to emulate a CPU")
    fixture = json.loads(FIXTURE.read_text())
    with tempfile.TemporaryDirectory(prefix="portable-check-") as tmp:
        project = args.project or make_project(Path(tmp), fixture["params"])
        md5 = run_stages(project.resolve(), fixture["params"], args.cpu)
    differ = sorted(k for k in OUTPUTS if md5[k] != fixture["md5"].get(k))
    cpu = f"{args.cpu}, emulated by qemu-x86_64" if args.cpu else describe_cpu()
    print(json.dumps({"cpu": cpu, "md5": md5, "differ": differ}, indent=2))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
