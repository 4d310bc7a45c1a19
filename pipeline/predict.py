"""`fcrn-predict`: depth maps for RGB photos from the registered model or a local model file.

Each image goes through the training preprocessing (resized with a box filter to the frame size
the model was trained on), the network, and a bilinear upsampling back to the image's own size.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from pipeline.config import load_params
from pipeline.inference import predict_depth, to_input
from pipeline.model.io import read_model
from pipeline.stage import run_stage

DEFAULT_MODEL = "models:/fcrn-nyu@champion"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
DEPTH_CMAP = "viridis"  # as in reports/predictions.png
MAX_MM = np.iinfo(np.uint16).max  # 65.535 m: far beyond any indoor depth

EPILOG = """\
Depths are metres for a camera like NYU Depth v2's Kinect (focal length ~519 px at 640x480, about
63 x 50 degrees field of view): the network learned metric scale from that camera, so a photo
taken with another focal length or cropped gets depths off by roughly the ratio of the focal
lengths.

Writes, per image, STEM.png (16-bit, depth in millimetres as the NYU toolbox stores it; 0 = no
value) and STEM_color.png (colourised, for viewing). MODEL is an MLflow model URI (models:/NAME@
ALIAS, models:/NAME/VERSION, runs:/...) resolved at MLFLOW_TRACKING_URI (default
sqlite:///mlflow.db in the current folder), or the path of a model file such as models/fcrn.pt.
"""

# (1, 3, h, w) float32 RGB in [0, 1] -> (1, h, w) float32 depth in metres at the same size
Predictor = Callable[[np.ndarray], np.ndarray]


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


def _local_predictor(path: Path) -> tuple[Predictor, tuple[int, int] | None]:
    """The model file's network and the training frame size it records (None: format 1)."""
    loaded = read_model(path, "cuda" if torch.cuda.is_available() else "cpu")

    def predict(x: np.ndarray) -> np.ndarray:
        return predict_depth(loaded.model, torch.from_numpy(x), x.shape[-2:]).cpu().numpy()

    return predict, loaded.input_hw


def _local_input_hw() -> tuple[int, int]:
    if not Path("params.yaml").is_file():
        raise ValueError(
            "this model file (format 1) does not record its training frame size: run in the "
            "project folder (params.yaml: data.preprocess.resize_hw) or pass --input-hw H W"
        )
    return load_params().data.preprocess.resize_hw


def _mlflow_predictor(uri: str) -> tuple[Predictor, tuple[int, int] | None]:
    """The pyfunc model at ``uri`` and the training frame size it records."""
    # Imported here: `--help`, a bad argument and a model file do not wait for MLflow (seconds).
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from pipeline.tracking import connect, first_line, tracking_uri

    connect()  # a dead server: one line naming it, in seconds, not MLflow's minutes of retries
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as e:  # unknown model, alias or version
        raise ValueError(f"{uri} at {tracking_uri()}: {first_line(e)}") from None
    input_hw = (model.metadata.metadata or {}).get("input_hw")
    return model.predict, tuple(input_hw) if input_hw else None


def predict_image(predict: Predictor, rgb: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Depth (H, W) in metres for an (H, W, 3) uint8 image."""
    size_wh = (input_hw[1], input_hw[0])
    small = np.array(Image.fromarray(rgb).resize(size_wh, Image.Resampling.BOX))  # writable
    depth = torch.from_numpy(np.asarray(predict(to_input(small[None]).numpy()), np.float32))
    full = F.interpolate(depth[:, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return full[0, 0].numpy()


def write_depth(depth: np.ndarray, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """STEM.png (uint16 millimetres) and STEM_color.png (viridis, near = dark)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mm = np.clip(np.round(depth * 1000.0), 0, MAX_MM).astype(np.uint16)
    raw, color = out_dir / f"{stem}.png", out_dir / f"{stem}_color.png"
    Image.fromarray(mm).save(raw)
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)
    rgba = matplotlib.colormaps[DEPTH_CMAP](scaled, bytes=True)
    Image.fromarray(rgba[..., :3]).save(color)
    return raw, color


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
        "--model", default=DEFAULT_MODEL, help=f"MLflow model URI or model file ({DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--input-hw",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="training frame size to resize to (default: recorded with the model)",
    )
    args = parser.parse_args(argv)
    images = find_images(args.inputs)
    if ":/" in args.model:
        predict, recorded_hw = _mlflow_predictor(args.model)
    else:
        predict, recorded_hw = _local_predictor(Path(args.model))
    input_hw = tuple(args.input_hw or recorded_hw or _local_input_hw())
    for path in images:
        depth = predict_image(predict, read_rgb(path), input_hw)
        raw, color = write_depth(depth, args.out, path.stem)
        print(f"{path} -> {raw}, {color} (median {np.median(depth):.2f} m)")


def main() -> None:
    """Console entry point: expected errors print one ``error:`` line and exit 1."""
    run_stage(cli)


if __name__ == "__main__":
    main()
