"""Where and how training runs: device, precision, determinism and DDP process group.

Kept apart from the training loop so that the loop reads the same on one CPU, one GPU or N
processes; every decision here is a pure function of params.yaml and the hardware found.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from pipeline import portable
from pipeline.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    """The resolved execution settings of one training process."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    rank: int = 0
    world_size: int = 1
    kernels: dict[str, str] = field(default_factory=dict)  # mode, ISA and thread pins in effect

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, outputs, logs and MLflow records."""
        return self.rank == 0

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> torch.autocast:
        """Mixed-precision context for forward passes (disabled in fp32)."""
        dtype = self.autocast_dtype or torch.float32
        return torch.autocast(
            self.device.type, dtype=dtype, enabled=self.autocast_dtype is not None
        )

    def describe(self) -> dict[str, str]:
        """System facts worth logging next to a run's numbers."""
        info = {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": str(self.channels_last),
            "world_size": str(self.world_size),
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "cpu": platform.processor() or platform.machine(),
            "cpu_native_bf16": str(cpu_has_native_bf16()),
            **self.kernels,
        }
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 autocast is ~2x faster than fp32 there, and ~17x slower on a CPU
    that only emulates bf16 (measured on AVX2), so `auto` must not pick it blindly."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """`train.precision` -> (autocast dtype or None, channels_last)."""
    if precision == "auto":
        native = device.type == "cuda" or cpu_has_native_bf16()
        precision = "bf16" if native else "fp32"
    if precision == "bf16":
        return torch.bfloat16, True
    return None, False


def resolve_data_on(
    data_on: str, device: torch.device, needed_bytes: int, max_fraction: float
) -> str:
    """`train.data_on` -> "loader" or "device". `auto` holds the split in GPU memory when it
    needs at most `max_fraction` of what is free: augmenting there frees the GPU from waiting on
    loader processes (one CPU core augments ~140 paper-size images/s). On the CPU the loader
    path keeps its workers' parallelism, so `auto` picks it there."""
    if data_on != "auto":
        return data_on
    if device.type != "cuda":
        return "loader"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if needed_bytes <= max_fraction * free else "loader"


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed torch's generators; with `deterministic`, forbid nondeterministic kernels.

    numpy's and Python's global generators are not used by training: every random draw of the
    data pipeline comes from generators seeded per (seed, epoch, image).
    """
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic  # autotuning picks kernels by timing


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


LAUNCHER_PID = "FCRN_DDP_LAUNCHER_PID"  # the stage process that starts torchrun in itself
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_launcher() -> None:
    """Have the kernel SIGKILL this DDP rank when the process that started it dies. torchrun
    starts each rank in a session of its own, so a SIGKILL to the stage's process group (`dvc
    repro` killed, a CI job cancelled) ended the launcher and left the ranks training: they
    finished beside the resumed run and deleted its checkpoint. A rank whose launcher is gone
    already (it died while this one started) stops at once. Linux only (prctl)."""
    if not sys.platform.startswith("linux"):
        return
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    launcher = os.environ.get(LAUNCHER_PID)
    if launcher and os.getppid() != int(launcher):
        raise SystemExit(f"error: this DDP rank's launcher (pid {launcher}) is gone: stopping")


def setup(cfg: TrainConfig) -> Runtime:
    """Pick the device and precision; join the process group when started by torchrun (and
    die with the launcher).
    A CUDA GPU is used in both modes (this is a GPU pipeline; its bytes follow the GPU kind);
    on the CPU, portable mode trains in fp32: that is what makes its bytes portable."""
    rank, world_size, local_rank = 0, 1, 0
    if launched_by_torchrun():
        die_with_launcher()
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = not cfg.deterministic
        torch.backends.cudnn.allow_tf32 = not cfg.deterministic
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    kernels = portable.check(cfg.reproducible, device)
    seed_everything(cfg.seed, cfg.deterministic)
    portable_cpu = cfg.reproducible == "portable" and device.type == "cpu"
    precision = "fp32" if portable_cpu else cfg.precision
    autocast_dtype, channels_last = resolve_precision(precision, device)
    return Runtime(device, autocast_dtype, channels_last, rank, world_size, kernels)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()
