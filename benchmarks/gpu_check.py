"""One prepared GPU check: paper-size training throughput, a short training, prediction rates.

Runs where only Python, torch, numpy, h5py, tqdm and pyyaml are installed (a bare CUDA machine;
no pydantic, MLflow or DVC: nothing here imports `pipeline.config`, `pipeline.train` or the
tracking code) and writes one JSON file, within ``--budget-s`` (each part is skipped, and says
so, when what is left would not fit it):

- ``train``: images/s, MFU and host syncs per step of the training step at 228x304 (SGD with
  momentum, berHu, bf16 autocast + channels_last or fp32) for each batch x compile mode x
  precision;
  MFU = images/s x FLOPs of one step per image (torch's FlopCounterMode) / the chip's dense bf16
  peak; host syncs are counted by CUDA's sync debug mode over the timed steps;
- ``short_training``: ``--train-s`` seconds at the best setting on a generated twin (rooms whose
  colour follows their depth), the loss of its first and last 20 steps;
- ``predict``: `fcrn-predict`'s backend (batches, upsampling to 480x640) in images/s, and
  onnxruntime's CUDA provider on the ONNX export when onnxruntime-gpu is installed.

    python benchmarks/gpu_check.py --out gpu_check.json          # on the GPU machine
    python benchmarks/gpu_check.py --batches 64 128 --compile off reduce-overhead --out b.json
    python benchmarks/gpu_check.py --smoke --out smoke.json      # CPU smoke form (the tests)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # no install needed there

from pipeline.model.fcrn import FCRN
from pipeline.model.io import save_model
from pipeline.model.loss import berhu
from pipeline.predictors import TorchPredictor

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
PAPER_HW = (228, 304)


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_flops(hw: tuple[int, int]) -> float:
    """FLOPs of one training step (forward + backward) per image, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = FCRN(out_bias=3.0)
        x, y = torch.rand(2, 3, *hw), torch.rand(2, 1, *hw)
    with FlopCounterMode(display=False) as counter:
        out = F.interpolate(model(x), size=hw, mode="bilinear", align_corners=False)
        berhu(out, y).backward()
    return counter.get_total_flops() / 2


def _twin(n: int, hw: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` generated rooms: depth a tilted floor-to-wall ramp with boxes, colour shaded by it."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, hw[0]), torch.linspace(0, 1, hw[1]), indexing="ij")
    depth = 2 + 4 * (1 - yy)[None] * torch.rand(n, 1, 1, generator=g) + xx[None]
    for _ in range(3):  # a box per room in front of the wall
        cy, cx = torch.rand(2, n, 1, 1, generator=g)
        box = ((yy - cy).abs() < 0.15) & ((xx - cx).abs() < 0.1)
        depth = torch.where(box, depth * 0.6, depth)
    shade = (1 / depth)[:, None] * torch.rand(n, 3, 1, 1, generator=g) * 2
    rgb = (shade + 0.05 * torch.rand(n, 3, *hw, generator=g)).clamp(0, 1)
    return rgb, depth[:, None]


class Trainer:
    """One model, optimizer and compiled-or-not step for a (batch, compile, precision)."""

    def __init__(self, device: torch.device, batch: int, compile_mode: str, bf16: bool,
                 hw: tuple[int, int]) -> None:  # fmt: skip
        torch.manual_seed(0)
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        self.model = FCRN(out_bias=3.0).to(device, memory_format=fmt).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.device, self.bf16, self.hw, self.fmt = device, bf16, hw, fmt
        off = compile_mode == "off"
        self.forward = self.model if off else torch.compile(self.model, mode=compile_mode)
        self.rgb, self.depth = (t.to(device) for t in _twin(max(batch, 64), hw, 0))
        self.batch, self.compile_mode = batch, compile_mode

    def step(self, i: int) -> torch.Tensor:
        if self.compile_mode == "reduce-overhead":  # a new iteration: last step's graph outputs go
            torch.compiler.cudagraph_mark_step_begin()
        # Indices made on the device: a CPU index tensor would be copied in with a host sync.
        first = i * self.batch
        rows = torch.arange(first, first + self.batch, device=self.device) % len(self.rgb)
        x = self.rgb[rows].contiguous(memory_format=self.fmt)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            out = self.forward(x)
        pred = F.interpolate(out.float(), size=self.hw, mode="bilinear", align_corners=False)
        loss = berhu(pred, self.depth[rows])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def _time_steps(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(images/s, host syncs per step) over ``steps`` after three warm-up steps (CUDA graphs
    record on the second)."""
    for i in range(3):
        trainer.step(i)
    _sync(trainer.device)
    cuda = trainer.device.type == "cuda"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        start = time.perf_counter()
        for i in range(steps):
            trainer.step(i)
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
        _sync(trainer.device)
        elapsed = time.perf_counter() - start
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    return trainer.batch * steps / elapsed, syncs / steps


def _train_matrix(args: argparse.Namespace, device: torch.device, deadline: float) -> list[dict]:
    flops, peak = _step_flops(args.hw), _peak(device)
    runs = []
    for batch in args.batches:
        for mode in args.compile:
            for precision in args.precisions:
                run = {"batch": batch, "compile": mode, "precision": precision}
                if time.monotonic() + args.part_s > deadline:
                    runs.append(run | {"skipped": "over the time budget"})
                    continue
                trainer = Trainer(device, batch, mode, precision == "bf16", args.hw)
                rate, syncs = _time_steps(trainer, args.steps)
                mfu = rate * flops / (peak * 1e12) if peak else None
                runs.append(run | {"images_per_s": round(rate, 2), "syncs_per_step": syncs,
                                   "mfu": None if mfu is None else round(mfu, 4)})  # fmt: skip
                del trainer
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return runs


def _short_training(args: argparse.Namespace, device: torch.device, best: dict) -> dict:
    """``--train-s`` seconds at the best setting: the loss must fall."""
    bf16 = best.get("precision", "bf16") == "bf16"
    trainer = Trainer(device, best.get("batch", args.batches[0]), best.get("compile", "off"),
                      bf16, args.hw)  # fmt: skip
    losses, start, i = [], time.monotonic(), 0
    while time.monotonic() - start < args.train_s:
        losses.append(trainer.step(i))
        i += 1
    values = torch.stack(losses).float().cpu().numpy()  # one host sync, at the end
    first, last = float(values[:20].mean()), float(values[-20:].mean())
    return {"seconds": args.train_s, "steps": i, "images": i * trainer.batch,
            "batch": trainer.batch, "loss_first_20": round(first, 4),
            "loss_last_20": round(last, 4), "loss_fell": last < first}  # fmt: skip


def _predict_rates(args: argparse.Namespace, root: Path) -> dict:
    """fcrn-predict's PyTorch backend at 480x640 (network on batches + upsampling), and
    onnxruntime's CUDA provider when it is installed."""
    torch.manual_seed(0)
    model_file = root / "fcrn.pt"
    save_model(FCRN(out_bias=3.0), {"out_bias": 3.0}, model_file, (240, 320), PAPER_HW)
    predictor = TorchPredictor(str(model_file))
    batch = args.predict_batch or predictor.default_batch
    frames = np.random.default_rng(0).integers(0, 256, (batch, 240, 320, 3), np.uint8)
    for _ in range(2):  # warm-up
        predictor.predict(frames)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < args.predict_s:
        for depth in predictor.predict(frames):
            predictor.upsample(depth, args.photo_hw)
        n += batch
    result = {"batch": batch, "photo_hw": list(args.photo_hw),
              "torch_images_per_s": round(n / (time.perf_counter() - start), 2)}  # fmt: skip
    skip = {"skipped": "smoke form (the export alone takes minutes on 2 cores)"}
    result["onnxruntime"] = skip if args.smoke else _onnx_rate(args, model_file, root, frames)
    return result


def _onnx_rate(args: argparse.Namespace, model_file: Path, root: Path, frames: np.ndarray) -> dict:
    try:
        import onnxruntime as ort

        from pipeline.onnx_export import _export
    except ImportError as e:
        return {"skipped": f"not installed: {e.name}"}
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
    providers = [p for p in wanted if p in ort.get_available_providers()]
    try:
        _export(model_file, root / "fcrn.onnx")
    except ImportError as e:  # onnx / onnxscript (the exporter's)
        return {"skipped": f"the exporter needs {e.name}"}
    session = ort.InferenceSession(str(root / "fcrn.onnx"), providers=providers)
    x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), np.float32) / np.float32(255)
    session.run(None, {"rgb": x})
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < args.predict_s:
        session.run(None, {"rgb": x})
        n += len(x)
    return {"providers": session.get_providers(),
            "network_images_per_s": round(n / (time.perf_counter() - start), 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the CPU test form")
    parser.add_argument("--budget-s", type=float, default=420.0)
    # Most telling first: parts past the budget are skipped. Batch 64 with CUDA graphs was the
    # fastest measured on an H200; small batches wait on kernel launches.
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 32])
    parser.add_argument(
        "--compile",
        nargs="+",
        default=["reduce-overhead", "off", "default"],
        choices=["off", "default", "reduce-overhead", "max-autotune"],
        help="torch.compile modes to time (reduce-overhead: CUDA graphs)",
    )
    parser.add_argument(
        "--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"]
    )
    parser.add_argument("--train-s", type=float, default=120.0, help="the short training")
    args = parser.parse_args(argv)
    if args.smoke:
        args.hw, args.photo_hw, args.batches, args.compile = (64, 80), (96, 128), [2], ["off"]
        args.precisions, args.steps, args.part_s, args.train_s = ["fp32"], 2, 5.0, 3.0
        args.predict_s, args.predict_batch = 1.0, 2
    else:
        args.hw, args.photo_hw, args.steps, args.part_s = PAPER_HW, (480, 640), 20, 40.0
        args.predict_s, args.predict_batch = 10.0, None
    deadline = time.monotonic() + args.budget_s - args.train_s - 3 * args.predict_s
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "hw": list(args.hw),
              "gflop_per_image_step": round(_step_flops(args.hw) / 1e9, 2),
              "peak_bf16_tflops": _peak(device)}  # fmt: skip
    report["train"] = _train_matrix(args, device, deadline)
    timed = [r for r in report["train"] if "images_per_s" in r]
    best = max(timed, key=lambda r: r["images_per_s"], default={})
    report["short_training"] = _short_training(args, device, best)
    with tempfile.TemporaryDirectory() as tmp:
        report["predict"] = _predict_rates(args, Path(tmp))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
