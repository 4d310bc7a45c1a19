"""`fcrn-export --onnx OUT MODEL`: an FCRN model as ONNX, for onnxruntime, OpenVINO, TensorRT or
a browser, and the ONNX file every registered version carries.

The graph is the network itself: (N, 3, H, W) float32 RGB in [0, 1] -> (N, 1, H', W') depth in
metres at the network's own resolution (about half the input); callers upsample bilinearly
(half-pixel centres) to the input size, as `pipeline.inference.predict_depth` does. Keeping the
upsampling out lets the evaluation protocols score the ONNX model exactly as the PyTorch one.
Batch, height and width are dynamic for the torchvision FCRN. The authors' graph pads its max
pool by the parity of the input size (TF SAME), which the exporter does not carry through
dynamic sizes (wrong by ~2 cm at 102x136), so its height and width are fixed to the training
frame size. The metadata records ``input_hw`` (the frame size inputs are resized to first),
``arch``, ``dynamic_hw`` and ``output``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from pipeline.io import atomic_path
from pipeline.stage import run_stage

OPSET = 18
ONNX_NAME = "fcrn.onnx"  # its name inside a registered version (`extra_files/`)
OUTPUT_DOC = "depth in metres at the network's resolution, N x 1 x H' x W': upsample bilinearly"


def _export(model_path: Path, dest: Path) -> None:
    """The model file at ``model_path`` as ONNX at ``dest`` (torch's dynamo exporter)."""
    import onnx
    import torch

    from pipeline.model.io import read_model
    from pipeline.model.official import OfficialFCRN

    loaded = read_model(model_path)
    if loaded.input_hw is None:
        raise ValueError(f"{model_path}: a format-1 model file records no frame size: re-train it")
    official = isinstance(loaded.model, OfficialFCRN)
    x = torch.rand(2, 3, *loaded.input_hw)  # a batch of 2: a size-1 dim would be fixed
    dims = {0: torch.export.Dim("batch")}
    if not official:
        dims |= {2: torch.export.Dim("height", min=32), 3: torch.export.Dim("width", min=32)}
    # The exporter prints its progress and warns about its own internals: neither is ours.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            loaded.model, (x,), dynamo=True, opset_version=OPSET, input_names=["rgb"],
            output_names=["depth"], dynamic_shapes={"x": dims}, verbose=False,
        )  # fmt: skip
    model = program.model_proto
    meta = {
        "input_hw": f"{loaded.input_hw[0]},{loaded.input_hw[1]}",
        "arch": "official" if official else "torchvision",
        "dynamic_hw": str(not official).lower(),
        "input": "float32 RGB in [0, 1], N x 3 x H x W",
        "output": OUTPUT_DOC,
    }
    onnx.helper.set_model_props(model, meta)
    with atomic_path(dest) as tmp:
        onnx.save(model, str(tmp))


def _from_registry(uri: str, dest: Path) -> None:
    """Copy the ONNX file a registered version carries (versions registered since it does)."""
    from pipeline.tracking import version_file

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = version_file(uri, ONNX_NAME, tmp)
        except FileNotFoundError as e:
            raise ValueError(
                f"{e}; versions registered before ONNX files were added have none: export its "
                "model file instead (fcrn-export --onnx OUT models/fcrn.pt)"
            ) from None
        with atomic_path(dest) as out:
            shutil.copyfile(local, out)


def export_onnx(model: str, dest: Path) -> Path:
    """``model`` (a model file, or an MLflow model URI whose version carries ONNX) -> ``dest``."""
    if ":/" in model:
        _from_registry(model, dest)
    else:
        _export(Path(model), dest)
    return dest


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fcrn-export", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model file (models/fcrn.pt) or MLflow model URI")
    parser.add_argument("--onnx", type=Path, required=True, metavar="OUT", help="ONNX file")
    args = parser.parse_args(argv)
    logging.getLogger("torch").setLevel(logging.ERROR)
    export_onnx(args.model, args.onnx)
    print(f"{args.model} -> {args.onnx} (ONNX opset {OPSET})")


def main() -> None:
    """Console entry point: expected errors print one ``error:`` line and exit 1."""
    run_stage(cli)


if __name__ == "__main__":
    main()
