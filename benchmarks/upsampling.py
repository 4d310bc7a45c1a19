"""Naive vs fast up-projection for the whole FCRN: forward and training-step time, FLOPs.

Prints one JSON object. Both variants hold the same weights and are timed side by side, with
interleaved repetitions and medians, so that load from other processes hits both alike. On the
CPU it also compares contiguous against channels_last memory format; with CUDA it times bf16
autocast + channels_last + cudnn.benchmark.

    .venv/bin/python benchmarks/upsampling.py --batch 4 --repeats 5
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.model import FCRN, count_parameters
from pipeline.model.loss import berhu

VARIANTS = ("naive", "fast")


def _models(decoder: str, device: str, memory_format: torch.memory_format) -> dict[str, FCRN]:
    torch.manual_seed(0)
    fast = FCRN(decoder, fast=True, out_bias=3.0)
    naive = FCRN(decoder, fast=False, out_bias=3.0)
    naive.load_state_dict(fast.state_dict())
    return {
        name: model.to(device, memory_format=memory_format)
        for name, model in zip(VARIANTS, (naive, fast), strict=True)
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _step_fns(model: FCRN, x: torch.Tensor, y: torch.Tensor, amp: bool) -> dict[str, Callable]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    autocast = torch.autocast(x.device.type, torch.bfloat16, enabled=amp)

    def forward() -> None:
        model.eval()
        with torch.no_grad(), autocast:
            model(x)

    def train_step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = berhu(model(x).float(), y)
        loss.backward()
        opt.step()

    return {"forward": forward, "train_step": train_step}


def time_variants(
    models: dict[str, FCRN], x: torch.Tensor, y: torch.Tensor, repeats: int, amp: bool
) -> dict:
    """Median seconds per call for each variant and phase; repetitions interleave variants."""
    device = x.device.type
    fns = {name: _step_fns(model, x, y, amp) for name, model in models.items()}
    times: dict[str, dict[str, list[float]]] = {n: {"forward": [], "train_step": []} for n in fns}
    for rep in range(repeats + 1):  # the first round warms up (oneDNN/cuDNN plans, allocator)
        for name, phases in fns.items():
            for phase, fn in phases.items():
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                if rep:
                    times[name][phase].append(time.perf_counter() - start)
    result: dict = {
        name: {phase: round(statistics.median(ts), 4) for phase, ts in phases.items()}
        for name, phases in times.items()
    }
    for phase in ("forward", "train_step"):
        result[f"{phase}_speedup"] = round(result["naive"][phase] / result["fast"][phase], 3)
    result["fast_train_s_per_image"] = round(result["fast"]["train_step"] / x.shape[0], 4)
    return result


def flops_per_image(model: FCRN, shape: tuple[int, int, int]) -> int:
    """Forward FLOPs (torch's counter: 2 per multiply-add) for one image."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.rand(1, *shape))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--height", type=int, default=228)
    parser.add_argument("--width", type=int, default=304)
    parser.add_argument("--decoder", choices=("upproj", "upconv"), default="upproj")
    parser.add_argument("--no-channels-last", action="store_true", help="skip that CPU run")
    args = parser.parse_args()
    shape = (3, args.height, args.width)

    models = _models(args.decoder, "cpu", torch.contiguous_format)
    x = torch.rand(args.batch, *shape)
    with torch.no_grad():
        out_shape = tuple(models["fast"].eval()(x[:1]).shape[1:])
    y = torch.rand(args.batch, *out_shape) * 9.5 + 0.5
    report: dict = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "decoder": args.decoder,
        "batch": args.batch,
        "input": list(shape),
        "output": list(out_shape),
        "repeats": args.repeats,
        "params": count_parameters(models["fast"]),
        "flops_per_image": {n: flops_per_image(m, shape) for n, m in models.items()},
        "cpu": {"contiguous": time_variants(models, x, y, args.repeats, amp=False)},
    }
    if not args.no_channels_last:
        models = _models(args.decoder, "cpu", torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        report["cpu"]["channels_last"] = time_variants(models, x_cl, y, args.repeats, amp=False)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        models = _models(args.decoder, "cuda", torch.channels_last)
        x_gpu = x.to("cuda", memory_format=torch.channels_last)
        report["cuda"] = {
            "device": torch.cuda.get_device_name(),
            "bf16_channels_last": time_variants(models, x_gpu, y.cuda(), args.repeats, amp=True),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
