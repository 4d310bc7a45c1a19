"""What `train.reproducible: portable` costs: training img/s per mode, side by side, one JSON.

The pins must be in place before torch loads, so each measurement is a fresh child process
(`pipeline.portable.pin`, as the train stage does); the modes take turns, `--repeats` times, so
load from other processes hits them alike, and the medians are compared. Modes: `native` (what
the train stage runs with `reproducible: native`: `train.precision`, all cores, the CPU's best
kernels), `native_fp32` (the same in fp32: the cost of the pins alone) and `portable`. Sizes and
batch come from params.yaml (crop, `train.batch_size`), on random frames:

    .venv/bin/python benchmarks/portable_cost.py --steps 6 --repeats 3

    {"cpu": str, "flags": [str], "crop_hw": [h, w], "batch": int,
     "images_per_s": {"native": float, "native_fp32": float, "portable": float},
     "portable_vs_native": float, "portable_vs_native_fp32": float, "kernels": {mode: {...}}}
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pipeline import portable
from pipeline.config import load_params

MODES = {"native": None, "native_fp32": "fp32", "portable": "fp32"}  # mode -> precision override
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def child(mode: str, steps: int) -> dict[str, object]:
    """Time `steps` training steps (after one warm-up) in this process, pinned for `mode`."""
    portable.pin("portable" if mode == "portable" else "native")
    import torch
    import torch.nn.functional as F

    from pipeline.model import FCRN
    from pipeline.model.loss import berhu
    from pipeline.runtime import resolve_precision

    params = load_params()
    kernels = portable.check("portable" if mode == "portable" else "native", torch.device("cpu"))
    autocast, channels_last = resolve_precision(
        MODES[mode] or params.train.precision, torch.device("cpu")
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = FCRN(out_bias=3.0).to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    hw, batch = params.data.preprocess.crop_hw, params.train.batch_size
    x = torch.rand(batch, 3, *hw).contiguous(memory_format=fmt)
    y = torch.rand(batch, 1, *hw) * 5 + 1
    seconds = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast is not None):
            out = model(x)
        loss = berhu(F.interpolate(out.float(), size=hw, mode="bilinear"), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    return {"images_per_s": batch / statistics.median(seconds[1:]), "kernels": kernels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="turns of each mode")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    kernels = {}
    for _ in range(args.repeats):
        for mode in MODES:
            cmd = [sys.executable, __file__, "--child", mode, "--steps", str(args.steps)]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
            rates[mode].append(out["images_per_s"])
            kernels[mode] = out["kernels"]
    medians = {mode: round(statistics.median(r), 3) for mode, r in rates.items()}
    params = load_params()
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    print(
        json.dumps(
            {
                "cpu": platform.processor() or platform.machine(),
                "flags": [f for f in ISA_FLAGS if f in flags],
                "crop_hw": list(params.data.preprocess.crop_hw),
                "batch": params.train.batch_size,
                "images_per_s": medians,
                "portable_vs_native": round(medians["portable"] / medians["native"], 3),
                "portable_vs_native_fp32": round(medians["portable"] / medians["native_fp32"], 3),
                "kernels": kernels,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
