"""`fcrn-predict`, loading the registered model in a fresh process, and `mlflow models serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import requests
import torch
from e2e import BIN, closed_url, mlflow_serving
from PIL import Image

from pipeline.inference import predict_depth
from pipeline.model import io as model_io
from pipeline.model.io import load_model
from pipeline.predict import main

if TYPE_CHECKING:
    from conftest import MlflowServer
    from tiny_project import TinyProject

SIZES = {"wide.png": (50, 70), "photo.jpg": (61, 83), "grey.png": (40, 40)}  # name: (H, W)


def _images(folder: Path) -> Path:
    """Two colour images in ``folder`` and a greyscale one beside it; return the folder."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        mode = "L" if name.startswith("grey") else "RGB"
        shape = (h, w) if mode == "L" else (h, w, 3)
        dest = folder.parent / name if mode == "L" else folder / name
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(dest)
    return folder


def _predict(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the console entry point in-process; return its exit status."""
    monkeypatch.setattr(sys, "argv", ["fcrn-predict", *argv])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def project(tiny_project: Callable[[str], TinyProject]) -> TinyProject:
    project = tiny_project("predict")
    project.write_model(out_bias=2.0)  # random weights; depths near 2 m
    return project


def test_writes_16bit_millimetres_and_colour_at_each_input_size(
    project: TinyProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _images(tmp_path / "photos")
    out = tmp_path / "out"
    monkeypatch.chdir(project.root)  # params.yaml gives the training frame size: 48x64
    argv = [
        "--model",
        str(project.model),
        "--out",
        str(out),
        str(folder),
        str(tmp_path / "grey.png"),
    ]
    assert _predict(argv, monkeypatch) == 0
    for name, hw in SIZES.items():
        stem = Path(name).stem
        with Image.open(out / f"{stem}.png") as depth, Image.open(out / f"{stem}_color.png") as c:
            assert (depth.mode, depth.size[::-1]) == ("I;16", hw)
            assert (c.mode, c.size[::-1]) == ("RGB", hw)
            mm = np.asarray(depth)
    # The last image by hand: box-resized to 48x64, predicted, upsampled, in millimetres.
    rgb = np.array(Image.open(tmp_path / "grey.png").convert("RGB").resize((64, 48), Image.BOX))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    small = predict_depth(load_model(project.model), x, (48, 64))
    full = torch.nn.functional.interpolate(small[:, None], size=SIZES["grey.png"], mode="bilinear")
    expected_mm = full[0, 0].numpy() * 1000  # rounding, plus float32 noise of other conv paths
    assert (np.abs(mm - expected_mm) <= 0.5 + 1e-5 * expected_mm).all()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unreadable", "broken.png: not a readable image"),
        ("bomb", "bomb.png: 20000x12000 = 240,000,000 pixels is over PIL's limit of 178,956,970"),
        ("no_model", "missing.pt: no model file"),
        ("no_input", "nowhere: no such image or folder"),
        ("dead_server", "http://127.0.0.1:"),
    ],
)
def test_errors_are_one_line(
    case: str,
    expected: str,
    project: TinyProject,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = tmp_path / "broken.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    model = str(project.model)
    if case == "unreadable":
        pass
    elif case == "bomb":  # a 29 KB PNG of 20000x12000 1-bit pixels: PIL refuses to decode it
        image = tmp_path / "bomb.png"
        Image.new("1", (20000, 12000)).save(image)
    elif case == "no_model":
        model = str(tmp_path / "missing.pt")
    elif case == "no_input":
        image = tmp_path / "nowhere"
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_url())
        model = "models:/fcrn-nyu@champion"
    argv = ["--model", model, "--input-hw", "48", "64", "--out", str(tmp_path / "o"), str(image)]
    started = time.monotonic()
    assert _predict(argv, monkeypatch) == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_console_script_help_states_the_camera_caveat() -> None:
    result = subprocess.run(
        [str(BIN / "fcrn-predict"), "--help"], capture_output=True, text=True, check=True
    )
    assert "Kinect" in result.stdout and "focal length" in result.stdout


# --- the registered model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def champion(project: TinyProject, mlflow_server: MlflowServer) -> Iterator[str]:
    """``models:/<name>@champion`` of the project's model, registered by the `register` stage;
    MLFLOW_TRACKING_URI points at the test server for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("DO_NOT_TRACK", "true")
        assert project.register()["decision"] == "champion"
        yield f"models:/{project.model_name}@champion"


def _eager(project: TinyProject, x: np.ndarray) -> np.ndarray:
    return predict_depth(load_model(project.model), torch.from_numpy(x), x.shape[-2:]).numpy()


@pytest.mark.slow
def test_a_fresh_process_without_this_repo_loads_the_champion(
    champion: str, project: TinyProject, tmp_path: Path
) -> None:
    x = np.random.default_rng(1).random((3, 3, 48, 64), dtype=np.float32)  # other batch size
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys\n"
        "sys.modules['pipeline'] = None  # importing this repo's code would fail\n"
        "import numpy as np, mlflow.pyfunc\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))\n"
    )
    cmd = [sys.executable, "-I", "-c", script, champion, "x.npy", "y.npy"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # MLflow leaves its download in the temp dir
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (3, 48, 64)
    np.testing.assert_allclose(y, _eager(project, x), rtol=0, atol=1e-5)


def _depth_png(model: str, folder: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    argv = ["--model", model, "--input-hw", "48", "64", "--out", str(out), str(folder)]
    assert _predict(argv, monkeypatch) == 0
    return np.asarray(Image.open(out / "photo.png")).astype(int)


@pytest.mark.slow
def test_registry_model_predicts_what_the_model_file_does(
    champion: str, project: TinyProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version's own copy of the model file: the same network, the same millimetres."""
    folder = _images(tmp_path / "photos")
    registry = _depth_png(champion, folder, tmp_path / "registry", monkeypatch)
    file = _depth_png(str(project.model), folder, tmp_path / "file", monkeypatch)
    np.testing.assert_array_equal(registry, file)


@pytest.mark.slow
def test_a_version_without_the_model_file_predicts_through_its_pt2_program(
    champion: str, project: TinyProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Versions registered before they carried the model file load MLflow's pyfunc instead."""
    folder = _images(tmp_path / "photos")
    monkeypatch.setattr(model_io, "MODEL_FILE_NAME", "absent.pt")
    registry = _depth_png(champion, folder, tmp_path / "registry", monkeypatch)
    file = _depth_png(str(project.model), folder, tmp_path / "file", monkeypatch)
    assert np.abs(registry - file).max() <= 1  # millimetres: the pt2 program's float rounding


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["@nope", "/99"])
def test_unknown_alias_or_version_is_one_line(
    suffix: str,
    champion: str,
    project: TinyProject,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _images(tmp_path / "photos")
    model = f"models:/{project.model_name}{suffix}"
    argv = ["--model", model, "--out", str(tmp_path / "o"), str(tmp_path / "photos")]
    assert _predict(argv, monkeypatch) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {model} at http://127.0.0.1:"), err


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(
    champion: str, project: TinyProject, tmp_path: Path
) -> None:
    with mlflow_serving(champion, tmp_path / "serve.log") as url:
        x = np.random.default_rng(2).random((1, 3, 48, 64), dtype=np.float32)
        answer = requests.post(f"{url}/invocations", json={"inputs": x.tolist()}, timeout=60)
    assert answer.status_code == 200, answer.text
    depth = np.asarray(answer.json()["predictions"], dtype=np.float32)
    assert depth.shape == (1, 48, 64)
    np.testing.assert_allclose(depth, _eager(project, x), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_onnx_export_of_a_version_without_onnx_is_one_line(champion: str, tmp_path: Path) -> None:
    """The project's versions are registered with ``mlflow.onnx: false`` here; MLflow's download
    bar may precede the one error line."""
    cmd = [str(BIN / "fcrn-export"), champion, "--onnx", str(tmp_path / "x.onnx")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert (
        errors[0].startswith(f"error: {champion} at http://127.0.0.1:")
        and "no fcrn.onnx" in errors[0]
    )
    assert "fcrn-export --onnx OUT models/fcrn.pt" in errors[0]
    assert result.stderr.rstrip().endswith(errors[0]) and not (tmp_path / "x.onnx").exists()
