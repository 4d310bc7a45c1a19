"""Training and inference throughput of FCRN per precision mode, and the data loader's rate.

Prints one JSON object. The precision modes (fp32, bf16 autocast, each with and without
channels_last) are timed side by side with interleaved repetitions and medians, so load from
other processes hits them alike. Sizes, batch and workers come from params.yaml, so the numbers
describe the configured run; on a machine with CUDA the GPU is measured as well.

    .venv/bin/python benchmarks/train_throughput.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import torch
import torch.nn.functional as F

from pipeline.config import AugmentConfig, TrainConfig, load_params
from pipeline.data.dataset import DepthDataset, make_loader, split_rows
from pipeline.model import FCRN
from pipeline.model.loss import berhu
from pipeline.runtime import cpu_has_native_bf16
from pipeline.train import make_optimizer

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--train-h5", type=Path, default=Path("data/processed/train.h5"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
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
