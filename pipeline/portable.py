"""`train.reproducible: portable` (the default): the same bytes on any x86-64 CPU with AVX2.

A CPU run is bit-reproducible on one machine, but the kernels PyTorch, oneDNN, MKL and NumPy
pick at run time follow the CPU: AVX512 and AMX machines sum in other orders than AVX2-only ones,
bf16 is native on some and emulated on others, the thread count splits reductions, and MKL picks
its GEMM code by the CPU's vendor. Portable mode pins each choice to what every x86-64 CPU of the
last decade has: AVX2 kernels, MKL's vendor-neutral path, a fixed thread count and fp32 (checked
in `pipeline.config`). The libraries read these switches once, when they load, so they must be in
the environment before `import torch`: every stage that computes with torch (train, evaluate)
re-executes itself with them (`pin`), and `check` confirms after the import that they took.
A CUDA GPU is used when present: there the bytes follow the GPU kind (`bytes_follow`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # `pin` runs before torch may load: no import of torch at module level
    import torch

Mode = Literal["native", "portable"]

THREADS = 2  # fixed: the thread count changes how reductions are split (and so their bits)

# The switch of each library, read at load time. Values are the AVX2 level of each.
PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels (ATen)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: convolutions, batch norm on the CPU
    # MKL: its vendor-neutral code path. PyTorch runs small convolutions (batch 1, <= 20480
    # input elements: an odd last validation batch) as im2col + MKL GEMM, and MKL picks the GEMM
    # kernel by vendor even under "AVX2,STRICT": Intel and AMD CPUs gave other validation metrics.
    "MKL_CBWR": "COMPATIBLE",
    "NPY_ENABLE_CPU_FEATURES": "X86_V2 X86_V3",  # NumPy's dispatch: nothing past AVX2 (x86-64-v3)
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
}


def pin(mode: Mode) -> None:
    """In portable mode, make sure this process runs with `PINS`: if any is missing, replace the
    process by the same command with them set. The new process loads every library afresh (what
    this one loaded does not matter) under the same PID, so DVC and torchrun see one process.
    Call it before any work; a no-op in native mode and once pinned."""
    if mode != "portable" or all(os.environ.get(k) == v for k, v in PINS.items()):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **PINS})


def bytes_follow(mode: Mode, device: torch.device) -> str:
    """What a run's output bytes depend on beyond params.yaml and the commit (a run tag)."""
    import torch

    if device.type == "cuda":
        return f"the GPU kind ({torch.cuda.get_device_name(device)}) and its CUDA libraries"
    if mode == "portable":
        return "nothing: the same on any x86-64 CPU with AVX2"
    return f"this CPU kind: its vendor and ISA ({torch.backends.cpu.get_cpu_capability()} here)"


def check(mode: Mode, device: torch.device) -> dict[str, str]:
    """After `import torch`: fix the thread count and confirm the pins took effect; return what
    the run used (for reports/train_speed.json and the MLflow run)."""
    import torch  # already loaded by the caller; here so `pin` stays importable without it

    if mode == "portable":
        torch.set_num_threads(THREADS)
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != "AVX2" and device.type == "cpu":  # on a GPU the GPU sets the bytes
            raise ValueError(
                f"train.reproducible: portable needs an x86-64 CPU with AVX2 and the pins of "
                f"pipeline.portable.PINS set before torch loads (PyTorch runs {capability} "
                "kernels here): run it through `dvc repro`, or train with reproducible: native"
            )
    return {
        "reproducible": mode,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "native"),
        "numpy_cpu_features": os.environ.get("NPY_ENABLE_CPU_FEATURES", "native"),
        "threads": str(torch.get_num_threads()),
        "bytes_follow": bytes_follow(mode, device),
    }
