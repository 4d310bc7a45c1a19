"""Training and inference throughput of FCRN per precision mode, and the data loader's rate.

Prints one JSON object. `--profile default` (the default): the precision modes (fp32, bf16
autocast, each with and without channels_last) are timed side by side with interleaved
repetitions and medians, so load from other processes hits them alike. Sizes, batch and workers
come from params.yaml, so the numbers describe the configured run; on a machine with CUDA the GPU
is measured as well.

    .venv/bin/python benchmarks/train_throughput.py --repeats 3

`--profile paper`: the training loop itself (`pipeline.train.train_epoch`: augmentation, host
syncs every `train.sync_every` steps, the paper's SGD) at 228x304 crops of 240x320 frames, for each
batch x data path (`loader` workers or `device`) x compile x precision (fp32, or bf16 with
channels_last), one after another in one process, on random frames (`--train-h5` for real ones):

    {"device": str, "peak_tflops": float, "gflop_per_image": float,
     "loader_images_per_s_per_worker": float,
     "runs": [{"batch": int, "data_on": "loader" | "device", "compile": bool, "precision": str,
               "images_per_s": float, "mfu": float, "peak_memory_mib": int}, ...]}

images_per_s excludes each run's first step (compile, autotuning); MFU = images_per_s x the
FLOPs of one training step per image (counted by `torch.utils.flop_counter` on the meta device) /
peak_tflops, the device's dense bf16 peak (a table of known GPUs; elsewhere the best of a timed
large fp32 and bf16 matmul), so fp32 runs show their share of what the chip could do.
peak_memory_mib is the CUDA allocator's peak per run (on the CPU the process's peak RSS so far).
On a CPU keep it small (one 228x304 step is ~0.5 s/img fp32 on 2 cores; a compile ~100 s):

    .venv/bin/python benchmarks/train_throughput.py --profile paper --batches 2 --steps 2 \
        --compile false
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import AugmentConfig, Params, TrainConfig, load_params
from pipeline.data.dataset import DepthDataset, make_loader, split_rows
from pipeline.model import FCRN
from pipeline.model.loss import berhu, get_loss
from pipeline.runtime import Runtime, cpu_has_native_bf16, resolve_precision
from pipeline.train import build_data, make_optimizer, model_on_device, train_epoch

MODES = {  # name -> (autocast bf16, channels_last)
    "fp32": (False, False),
    "fp32_channels_last": (False, True),
    "bf16": (True, False),
    "bf16_channels_last": (True, True),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_fns(device: torch.device, cfg: TrainConfig, hw: tuple[int, int]) -> dict[str, Callable]:
    """One training-step closure per precision mode, each on its own copy of the same model,
    with the configured optimizer."""
    torch.manual_seed(0)
    base = FCRN(out_bias=3.0)
    slow = cfg.model_copy(update={"lr": 1e-6})  # weights barely move: every repeat does one job
    fns = {}
    for name, (bf16, channels_last) in MODES.items():
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = FCRN(out_bias=3.0)
        model.load_state_dict(base.state_dict())
        model = model.to(device, memory_format=fmt).train()
        opt = make_optimizer(slow, model.parameters())
        x = torch.rand(cfg.batch_size, 3, *hw, device=device).contiguous(memory_format=fmt)
        y = torch.rand(cfg.batch_size, 1, *hw, device=device) * 5 + 1

        def step(model=model, opt=opt, x=x, y=y, bf16=bf16) -> None:
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                out = model(x)
            pred = F.interpolate(out.float(), size=hw, mode="bilinear", align_corners=False)
            opt.zero_grad(set_to_none=True)
            berhu(pred, y).backward()
            opt.step()

        fns[name] = step
    return fns


def _time(fns: dict[str, Callable], device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds per call, modes interleaved within each repetition."""
    for fn in fns.values():  # warm-up: allocator, oneDNN/cudnn kernel selection
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _inference_rate(device: torch.device, batch: int, hw: tuple[int, int], bf16: bool) -> float:
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = FCRN(out_bias=3.0).to(device, memory_format=fmt).eval()
    x = torch.rand(batch, 3, *hw, device=device).contiguous(memory_format=fmt)

    @torch.no_grad()
    def forward() -> None:
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            model(x)

    return batch / _time({"f": forward}, device, 3)["f"]


def _loader_rate(
    train_h5: Path, batch: int, workers: int, seed: int, augment: AugmentConfig
) -> float:
    """Images/s the configured DataLoader delivers (with augmentation) over one pass."""
    with h5py.File(train_h5, "r") as f:
        n, crop_hw = len(f["index"]), tuple(int(v) for v in f.attrs["crop_hw"])
    rows, _ = split_rows(n, 0.0, seed)
    ds = DepthDataset(train_h5, rows, crop_hw, augment, seed)
    loader = make_loader(ds, batch, True, workers, seed, drop_last=False)
    start = time.perf_counter()
    count = sum(len(b["rgb"]) for b in loader)
    return count / (time.perf_counter() - start)


PAPER_STORED_HW = (240, 320)
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; the first
# name found in the device's name wins, so the PCIe H100 comes before the SXM one.
PEAK_BF16_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100": 989.4,
    "H200": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
}


def _measured_peak_tflops(device: torch.device) -> float:
    """The best of fp32 and bf16 large-matmul rates: the peak where no data sheet applies."""
    n, best = 2048, 0.0
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.rand(n, n, device=device, dtype=dtype)
        a @ a  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(3):
            a @ a
        _sync(device)
        best = max(best, 3 * 2 * n**3 / (time.perf_counter() - start) / 1e12)
    return best


def _peak_tflops(device: torch.device) -> float:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in PEAK_BF16_TFLOPS.items():
            if key in name:
                return peak
    return _measured_peak_tflops(device)


def _gflop_per_image(hw: tuple[int, int]) -> float:
    """FLOPs of one training step (forward, loss, backward) per image, counted without computing
    anything: the model and its inputs live on the meta device."""
    with torch.device("meta"):
        model = FCRN(out_bias=3.0)
        x, y = torch.rand(2, 3, *hw), torch.rand(2, 1, *hw) + 1.0
    with FlopCounterMode(display=False) as counter:
        pred = F.interpolate(model(x).float(), size=hw, mode="bilinear", align_corners=False)
        berhu(pred, y).backward()
    return counter.get_total_flops() / 2 / 1e9


def _random_frames(path: Path, n: int, seed: int = 0) -> Path:
    """A train.h5 of ``n`` random 240x320 frames (throughput does not depend on content)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["rgb"] = rng.integers(0, 256, (n, *PAPER_STORED_HW, 3), dtype=np.uint8)
        f["depth"] = rng.uniform(0.5, 10.0, (n, *PAPER_STORED_HW)).astype(np.float32)
        f["index"] = np.arange(n, dtype=np.int64)
        f.attrs["resize_hw"], f.attrs["crop_hw"] = PAPER_STORED_HW, (228, 304)
    return path


def _csv(kind: Callable[[str], object]) -> Callable[[str], list]:
    return lambda text: [kind(part) for part in text.split(",")]


def _flag(text: str) -> bool:
    if text not in ("false", "true"):
        raise argparse.ArgumentTypeError(f"expected false or true, got {text!r}")
    return text == "true"


def _paper_run(
    params: Params,
    train_h5: Path,
    device: torch.device,
    gflop: float,
    peak: float,
    workers: int | None,
    run: dict[str, object],
) -> dict[str, object]:
    """Steady-state img/s of the training loop with one batch/data_on/compile/precision."""
    update = {
        "batch_size": run["batch"],
        "val_fraction": 0.0,
        "lr": 1e-6,
        "data_on": run["data_on"],
    }
    if workers is not None:
        update["workers"] = workers
    cfg = params.train.model_copy(update=update)
    autocast_dtype, channels_last = resolve_precision(str(run["precision"]), device)
    rt = Runtime(device, autocast_dtype, channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
        data = build_data(cfg, train_h5, rt)
        # Random init: the speed does not depend on the weights, and no download is needed.
        model_cfg = params.model.model_copy(update={"encoder_weights": "none"})
        model, _ = model_on_device(model_cfg, cfg, train_h5, data, rt)
        net = torch.compile(model) if run["compile"] else model
        opt = make_optimizer(cfg, model.parameters())
        stats = train_epoch(
            net, opt, get_loss(cfg.loss), data, 0, cfg, rt, "benchmark", time_first_step=True
        )
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = stats.images_per_s
    return {
        **run,
        "images_per_s": round(rate, 2),
        "mfu": round(rate * gflop * 1e9 / (peak * 1e12), 4),
        "peak_memory_mib": round(memory),
    }


def paper_profile(args: argparse.Namespace) -> dict[str, object]:
    params = load_params(args.params)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hw = (228, 304)
    gflop, peak = _gflop_per_image(hw), _peak_tflops(device)
    with tempfile.TemporaryDirectory() as tmp:
        train_h5 = args.train_h5
        if train_h5 is None:  # one epoch = the first step + `steps` timed ones
            train_h5 = _random_frames(Path(tmp) / "train.h5", max(args.batches) * (args.steps + 1))
        loader_rate = _loader_rate(train_h5, 1, 0, 0, params.train.augment)
        grid = [
            {"batch": batch, "data_on": data_on, "compile": compiled, "precision": precision}
            for batch in args.batches
            for data_on in args.data_on
            for compiled in args.compile
            for precision in args.precisions
        ]
        runs = [
            _paper_run(params, train_h5, device, gflop, peak, args.workers, run) for run in grid
        ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": name,
        "peak_tflops": round(peak, 2),
        "gflop_per_image": round(gflop, 2),
        "loader_images_per_s_per_worker": round(loader_rate, 1),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=["default", "paper"], default="default")
    parser.add_argument("--params", type=Path, help="params.yaml, or params-paper.yaml (paper)")
    parser.add_argument("--train-h5", type=Path, help="default: data/processed/train.h5, or "
                        "random frames (paper)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="default profile")
    paper = parser.add_argument_group("paper profile")
    paper.add_argument("--batches", type=_csv(int), default=[16, 32, 64])
    paper.add_argument("--data-on", type=_csv(str), default=["loader", "device"])
    paper.add_argument("--compile", type=_csv(_flag), default=[False, True])
    paper.add_argument("--precisions", type=_csv(str), default=["fp32", "bf16"])
    paper.add_argument("--steps", type=int, default=20, help="timed steps per run")
    paper.add_argument("--workers", type=int, help="loader processes (default: train.workers)")
    args = parser.parse_args()
    if args.profile == "paper":
        args.params = args.params or Path("params-paper.yaml")
        print(json.dumps(paper_profile(args), indent=2))
        return
    args.params = args.params or Path("params.yaml")
    args.train_h5 = args.train_h5 or Path("data/processed/train.h5")
    params = load_params(args.params)
    cfg, hw = params.train, params.data.preprocess.crop_hw
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    result: dict = {
        "input_hw": list(hw),
        "batch": cfg.batch_size,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
    for device in devices:
        batch = cfg.batch_size
        step = _time(_step_fns(device, cfg, hw), device, args.repeats)
        train_rate = {name: round(batch / s, 2) for name, s in step.items()}
        fp32 = step["fp32"]
        result[device.type] = {
            "train_images_per_s": train_rate,
            "speedup_vs_fp32": {name: round(fp32 / s, 2) for name, s in step.items()},
            "inference_images_per_s": {
                "fp32": round(_inference_rate(device, batch, hw, False), 2),
                "bf16_channels_last": round(_inference_rate(device, batch, hw, True), 2),
            },
        }
        if device.type == "cuda":
            result["cuda"]["gpu"] = torch.cuda.get_device_name()
            result["cuda"]["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if args.train_h5.is_file():
        rate = _loader_rate(args.train_h5, cfg.batch_size, cfg.workers, cfg.seed, cfg.augment)
        best = max(result["cpu"]["train_images_per_s"].values())
        result["loader"] = {
            "workers": cfg.workers,
            "images_per_s": round(rate, 1),
            "x_cpu_training_rate": round(rate / best, 1),
        }
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
