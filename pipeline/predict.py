"""`fcrn-predict`: depth maps for RGB photos from the registered model, a model file or ONNX.

A pipeline, so that the network never waits on files: a thread pool decodes each photo and
box-resizes it to the frame size the model was trained on (PIL releases the GIL), the network
runs on batches of ``--batch-size``, and a second pool upsamples each depth map back to its
photo's size and writes its two PNGs (zlib releases the GIL) while the next batch runs. The
outputs equal the one-image-at-a-time loop's up to float rounding of the batched convolutions
(tests/test_predict_pipeline.py bounds it).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipeline.io import atomic_path
from pipeline.predictors import Predictor, load_predictor
from pipeline.stage import run_stage

DEFAULT_MODEL = "models:/fcrn-nyu@champion"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
DEPTH_CMAP = "viridis"  # as in reports/predictions.png
# zlib level 1 (OpenCV's default; PIL's is 6): encoding both PNGs took as long as the network's
# forward pass at 6 and takes a fifth at 1, for a depth PNG ~6% larger (pixels identical).
PNG_LEVEL = 1
MAX_MM = np.iinfo(np.uint16).max  # 65.535 m: far beyond any indoor depth
T = TypeVar("T")

EPILOG = """\
Depths are metres for a camera like NYU Depth v2's Kinect (focal length ~519 px at 640x480, about
63 x 50 degrees field of view): the network learned metric scale from that camera, so a photo
taken with another focal length or cropped gets depths off by roughly the ratio of the focal
lengths.

Writes, per image, STEM.png (16-bit, depth in millimetres as the NYU toolbox stores it; 0 = no
value) and STEM_color.png (colourised, for viewing). MODEL is an MLflow model URI (models:/NAME@
ALIAS, models:/NAME/VERSION, runs:/...) resolved at MLFLOW_TRACKING_URI (default
sqlite:///mlflow.db in the current folder), the path of a model file such as models/fcrn.pt, or
an ONNX file made by `fcrn-export --onnx` (run on onnxruntime, without PyTorch). One unreadable
image is reported at the end as one error line (exit status 1); every other image is written.
"""


def find_images(inputs: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their PNG/JPEG files (sorted, not recursive)."""
    images: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: no .png, .jpg or .jpeg images in this folder")
            images += found
        elif path.is_file():
            images.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such image or folder")
    stems = [p.stem for p in images]
    if clash := sorted({s for s in stems if stems.count(s) > 1}):
        raise ValueError(f"several inputs are named {clash[0]}.*: their outputs would collide")
    return images


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of any PNG/JPEG (greyscale, palette and alpha are converted).

    PIL refuses images of more than twice `Image.MAX_IMAGE_PIXELS` (a few KB of PNG can claim
    gigabytes of pixels: a decompression bomb); that is bad input, and named as such.
    """
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError:
        raise ValueError(_too_many_pixels(path)) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def _too_many_pixels(path: Path) -> str:
    """The message for an image over PIL's limit, with the size its header claims."""
    limit = 2 * Image.MAX_IMAGE_PIXELS  # PIL warns above MAX_IMAGE_PIXELS, refuses above twice
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # open reads the header only
    try:
        with Image.open(path) as im:
            w, h = im.size
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return (
        f"{path}: {w}x{h} = {w * h:,} pixels is over PIL's limit of {limit:,} pixels per image "
        f"(its guard against decompression bombs): scale the image down (the network sees it "
        f"at the training frame size anyway)"
    )


def write_depth(depth: np.ndarray, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """STEM.png (uint16 millimetres) and STEM_color.png (viridis, near = dark), each atomic."""
    import matplotlib  # here, not at start-up: it runs in the writer threads, beside the network

    mm = np.clip(np.round(depth * 1000.0), 0, MAX_MM).astype(np.uint16)
    raw, color = out_dir / f"{stem}.png", out_dir / f"{stem}_color.png"
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)
    rgba = matplotlib.colormaps[DEPTH_CMAP](scaled, bytes=True)
    for dest, pixels in ((raw, mm), (color, rgba[..., :3])):
        with atomic_path(dest) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG", compress_level=PNG_LEVEL)
    return raw, color


def _load(path: Path, input_hw: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray]:
    """(the photo's (H, W), the photo box-resized to ``input_hw``) as training resized frames."""
    rgb = read_rgb(path)
    small = Image.fromarray(rgb).resize(input_hw[::-1], Image.Resampling.BOX)
    return rgb.shape[:2], np.asarray(small)


def _prefetch(
    pool: ThreadPoolExecutor, fn: Callable[[Path], T], items: Iterable[Path], ahead: int
) -> Iterator[tuple[Path, Future[T]]]:
    """``fn`` over ``items`` in ``pool``, in order, at most ``ahead`` running beyond the one
    yielded (memory stays bounded on a folder of thousands of photos)."""
    pending: deque[tuple[Path, Future[T]]] = deque()
    for item in items:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) > ahead:
            yield pending.popleft()
    yield from pending


def _finish(model: Predictor, depth: np.ndarray, hw: tuple[int, int], out: Path, stem: str) -> None:
    write_depth(model.upsample(depth, hw), out, stem)


def predict_folder(
    model: Predictor,
    images: list[Path],
    out: Path,
    input_hw: tuple[int, int],
    batch_size: int,
    workers: int,
) -> list[str]:
    """Depth PNGs for ``images`` in ``out``; returns the messages of images that could not be
    read (the others are all written: one bad photo does not cost the rest)."""
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with (
        ThreadPoolExecutor(workers, "decode") as decode,
        ThreadPoolExecutor(workers, "write") as write,
        tqdm(total=len(images), desc="predict", unit="img", disable=None) as bar,  # off: no TTY
    ):
        loads = _prefetch(decode, lambda p: _load(p, input_hw), images, 2 * batch_size)
        writes: deque[Future[None]] = deque()
        while chunk := list(islice(loads, batch_size)):
            loaded = []
            for path, future in chunk:
                try:
                    loaded.append((path, *future.result()))
                except ValueError as e:
                    errors.append(str(e))
                    bar.update()
            if loaded:
                depths = model.predict(np.stack([small for _, _, small in loaded]))
                for (path, hw, _), depth in zip(loaded, depths, strict=True):
                    writes.append(write.submit(_finish, model, depth, hw, out, path.stem))
            while len(writes) > batch_size:  # one batch in flight beside the network
                writes.popleft().result()
                bar.update()
        for future in writes:
            future.result()
            bar.update()
    return errors


def _local_input_hw() -> tuple[int, int]:
    if not Path("params.yaml").is_file():
        raise ValueError(
            "this model file (format 1) does not record its training frame size: run in the "
            "project folder (params.yaml: data.preprocess.resize_hw) or pass --input-hw H W"
        )
    from pipeline.config import load_params  # pydantic: only for this old format

    return load_params().data.preprocess.resize_hw


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="fcrn-predict",
        description="Predict a depth map (metres) for each RGB image with an FCRN model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="PNG/JPEG files or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="folder for the depth PNGs")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"MLflow model URI, model file or .onnx file ({DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--input-hw",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="training frame size to resize to (default: recorded with the model)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="images per network call (default: 8 on a CPU, 32 on a GPU)"
    )
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="decode/write threads"
    )
    args = parser.parse_args(argv)
    images = find_images(args.inputs)
    started = time.perf_counter()
    model = load_predictor(args.model)
    input_hw = tuple(args.input_hw or model.input_hw or _local_input_hw())
    batch = args.batch_size or model.default_batch
    errors = predict_folder(model, images, args.out, input_hw, batch, max(1, args.workers))
    done = len(images) - len(errors)
    rate = done / (time.perf_counter() - started)
    print(f"{done} depth maps in {args.out} ({rate:.1f} img/s with model loading)")
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValueError(
            f"{len(errors)} of {len(images)} images not written, the other {done} are: "
            f"{errors[0]}{more}"
        )


def main() -> None:
    """Console entry point: expected errors print one ``error:`` line and exit 1."""
    run_stage(cli)


if __name__ == "__main__":
    main()
