"""ONNX: `fcrn-export --onnx`, onnxruntime against PyTorch (fp32), and `fcrn-predict` on it
without torch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from e2e import BIN, REPO, run

from pipeline.config import EvalConfig
from pipeline.evaluate import evaluate
from pipeline.inference import to_input
from pipeline.model.fcrn import FCRN
from pipeline.model.io import load_model, save_model
from pipeline.onnx_export import OPSET

if TYPE_CHECKING:
    from conftest import MlflowServer
    from tiny_project import TinyProject

HW = (48, 64)
# params.yaml's sizes: the registered model's frames and the crops its evaluation sees.
_PREPROCESS = yaml.safe_load((REPO / "params.yaml").read_text())["data"]["preprocess"]
FRAME_HW, CROP_HW = tuple(_PREPROCESS["resize_hw"]), tuple(_PREPROCESS["crop_hw"])


def _tiny_model(path: Path, hw: tuple[int, int]) -> Path:
    """A random FCRN whose depths are indoor-sized (~1-5 m): the head scaled down, as training
    leaves it (a random ResNet's raw outputs run to tens of metres)."""
    torch.manual_seed(0)
    config = {"decoder": "upproj", "fast": True, "final_relu": True, "out_bias": 3.0}
    model = FCRN(**config)
    with torch.no_grad():
        model.head.weight.mul_(0.05)
    save_model(model, config, path, hw, hw)
    return path


def _test_split(path: Path, n: int = 6, hw: tuple[int, int] = HW) -> Path:
    """A processed test file (the layout `evaluate` reads): smooth frames, depths 1-5 m."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]]
    rgb = np.stack([(128 + 100 * np.sin(xx / (5 + i) + yy / 9))[..., None].repeat(3, -1)
                    for i in range(n)]).astype(np.uint8)  # fmt: skip
    rgb = np.clip(rgb + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
    depth_full = rng.uniform(1, 5, (n, 480, 640)).astype(np.float32)
    depth_full[:, :10] = 0  # missing values, as the Kinect leaves
    with h5py.File(path, "w") as h5:
        h5["rgb"], h5["depth_full"], h5["index"] = rgb, depth_full, np.arange(n)
        h5["depth"] = depth_full[:, ::10, ::10]
        h5.attrs["resize_hw"], h5.attrs["crop_hw"] = hw, hw
    return path


@pytest.fixture(scope="module")
def exported(
    tiny_project: Callable[..., TinyProject], mlflow_server: MlflowServer
) -> tuple[Path, Path]:
    """(model file, its ONNX export): a random model at params.yaml's frame size registered by
    the `register` stage with `mlflow.onnx: true`, and the export its version carries, fetched
    by `fcrn-export models:/...@champion`. One export (~20-40 s on 2 cores) serves every test of
    the module."""
    sizes = {"data.preprocess.resize_hw": list(FRAME_HW), "data.preprocess.crop_hw": list(CROP_HW)}
    project = tiny_project("onnx", {"mlflow.onnx": True, **sizes})
    _tiny_model(project.model, FRAME_HW)
    dest = project.root / "registered.onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        assert project.register()["decision"] == "champion"
        uri = f"models:/{project.model_name}@champion"
        run([str(BIN / "fcrn-export"), uri, "--onnx", str(dest)], project.root)
    return project.model, dest


@pytest.mark.slow  # the `exported` fixture registers and exports (~1 min)
def test_export_is_opset_18_with_dynamic_batch_and_size_and_the_frame_size(
    exported: tuple[Path, Path],
) -> None:
    proto = onnx.load(str(exported[1]))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= OPSET >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["input_hw"] == ",".join(map(str, FRAME_HW)) and meta["dynamic_hw"] == "true"
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == 3 and all(isinstance(d, str) for d in dims[2:])


def parity(model_file: Path, onnx_file: Path, test_h5: Path) -> tuple[float, list[dict]]:
    """(max |onnxruntime - PyTorch fp32| in metres on the test frames, laina metrics of both)."""
    with h5py.File(test_h5) as h5:
        rgb = h5["rgb"][:]
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = to_input(rgb)
    with torch.no_grad():
        expected = load_model(model_file)(x).numpy()
    got = session.run(None, {"rgb": x.numpy()})[0]
    assert got.shape == expected.shape
    cfg = EvalConfig(protocol="laina", batch_size=4, num_examples=2)
    metrics = [evaluate(m, test_h5, test_h5, cfg).metrics["laina"] for m in (model_file, onnx_file)]
    return float(np.abs(got - expected).max()), metrics


def _assert_parity(max_diff: float, metrics: list[dict]) -> None:
    assert max_diff <= 1e-4  # metres
    rounded = [{k: round(v, 4) for k, v in m.items()} for m in metrics]
    assert rounded[0] == rounded[1]


@pytest.mark.slow  # the `exported` fixture registers and exports (~1 min)
def test_onnxruntime_equals_pytorch_fp32_and_the_laina_metrics(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    _assert_parity(*parity(*exported, _test_split(tmp_path / "test.h5")))
    session = ort.InferenceSession(str(exported[1]), providers=["CPUExecutionProvider"])
    other = session.run(None, {"rgb": np.random.default_rng(1).random((3, 3, 72, 96), np.float32)})
    assert other[0].shape[:2] == (3, 1)  # another batch and frame size: dynamic


@pytest.mark.slow  # the `exported` fixture registers and exports (~1 min)
def test_parity_at_the_default_frame_size(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """params.yaml's sizes: 96x128 crops of 102x136 frames (the export's example size)."""
    _assert_parity(*parity(*exported, _test_split(tmp_path / "test.h5", hw=CROP_HW)))


@pytest.mark.slow  # the `exported` fixture registers and exports (~1 min)
def test_fcrn_predict_runs_onnx_without_torch(exported: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(2)
    h0, w0 = FRAME_HW  # photos larger than the model's frames, as large, and smaller
    sizes = [(h0 + 2, w0 + 6), (h0 + 13, w0 + 19), (h0, w0), (h0 // 2 + 1, w0 // 2 + 3)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(folder / f"p{i}.png")
    code = (
        "import sys\n"
        "from pipeline.predict import cli\n"
        "cli(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    onnx_out, torch_out = tmp_path / "onnx", tmp_path / "torch"
    cmd = [sys.executable, "-c", code, "--model", str(exported[1]), "--out", str(onnx_out)]
    subprocess.run([*cmd, str(folder)], check=True, capture_output=True, text=True)
    argv = ["--model", str(exported[0]), "--out", str(torch_out), str(folder)]
    subprocess.run([str(BIN / "fcrn-predict"), *argv], check=True, capture_output=True)
    for i in range(len(sizes)):
        a, b = (np.asarray(Image.open(d / f"p{i}.png")).astype(int) for d in (onnx_out, torch_out))
        assert np.abs(a - b).max() <= 1  # millimetres: float rounding, one filter in two libraries


def test_export_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    cmd = [str(BIN / "fcrn-export"), str(tmp_path / "no.pt"), "--onnx", str(tmp_path / "x.onnx")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow  # the `exported` fixture registers and exports (~1 min)
def test_a_registered_version_carries_its_onnx_export(exported: tuple[Path, Path]) -> None:
    session = ort.InferenceSession(str(exported[1]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).random((2, 3, *HW), np.float32)
    with torch.no_grad():
        expected = load_model(exported[0])(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, {"rgb": x})[0] - expected).max() <= 1e-4
