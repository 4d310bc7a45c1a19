"""The networks `fcrn-predict` runs: a model file or an MLflow model on PyTorch, or an ONNX file
on onnxruntime. Each turns a batch of frames at the training frame size into depth at that size,
and upsamples one depth map to its photo's size.

Torch is imported only by the PyTorch backends, MLflow only for ``models:/`` URIs: the ONNX
path starts without either (seconds each on 2 cores).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

CPU_BATCH, GPU_BATCH = 8, 32  # CPU: the network's best rate (benchmarks/predict_throughput.py)


class Predictor(Protocol):
    input_hw: tuple[int, int] | None  # the training frame size it records (None: not recorded)
    default_batch: int

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) uint8 frames -> (N, h, w) float32 depth in metres."""

    def upsample(self, depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """(h, w) depth -> (*hw) bilinearly (half-pixel centres)."""


class TorchPredictor:
    """A model file's network (CUDA with bf16 autocast when present), also the one a registered
    version carries; the version's MLflow pyfunc when it carries none (registered before)."""

    def __init__(self, model: str) -> None:
        import torch

        from pipeline.model.io import MODEL_FILE_NAME, read_model

        self.torch = torch
        cuda = torch.cuda.is_available()
        self.default_batch = GPU_BATCH if cuda else CPU_BATCH
        self.autocast = torch.bfloat16 if cuda else None  # CPU: fp32, as evaluation scores it
        self.net = self.pyfunc = None
        with tempfile.TemporaryDirectory(prefix="fcrn-predict-") as tmp:  # read into memory
            if ":/" in model:  # the version's model file: a second to load, its pt2 ten or more
                from pipeline.tracking import version_file

                try:
                    model = str(version_file(model, MODEL_FILE_NAME, tmp))
                except FileNotFoundError:  # a version registered before it carried the file
                    self.pyfunc, self.input_hw = _load_pyfunc(model, tmp)
                    return
            loaded = read_model(Path(model), "cuda" if cuda else "cpu")
            self.net, self.input_hw = loaded.model, loaded.input_hw

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        from pipeline.inference import predict_depth, to_input

        x = to_input(rgb)
        if self.net is None:
            return np.asarray(self.pyfunc.predict(x.numpy()), np.float32)
        return predict_depth(self.net, x, x.shape[-2:], self.autocast).cpu().numpy()

    def upsample(self, depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        import torch.nn.functional as F

        small = self.torch.from_numpy(depth)[None, None]
        return F.interpolate(small, size=hw, mode="bilinear", align_corners=False)[0, 0].numpy()


def _load_pyfunc(uri: str, dst_dir: str) -> tuple[object, tuple[int, int] | None]:
    """The pyfunc model at ``uri`` (downloaded into ``dst_dir``) and the frame size it records."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from pipeline.tracking import connect, first_line, tracking_uri

    connect()  # a dead server: one line naming it, in seconds, not MLflow's minutes of retries
    try:
        model = mlflow.pyfunc.load_model(uri, dst_path=dst_dir)
    except MlflowException as e:  # unknown model, alias or version
        raise ValueError(f"{uri} at {tracking_uri()}: {first_line(e)}") from None
    input_hw = (model.metadata.metadata or {}).get("input_hw")
    return model, tuple(input_hw) if input_hw else None


def _resize(depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float32 map as the PyTorch backends compute it (`F.interpolate`,
    ``align_corners=False``: half-pixel centres, no antialiasing), so that both backends give one
    depth map whether the photo is larger or smaller than the frame. (PIL's bilinear widens its
    support when shrinking: on photos smaller than the frame it differed by metres.)"""
    if depth.shape == tuple(hw):
        return depth
    (top, bottom), dy = _taps(depth.shape[0], hw[0])
    (left, right), dx = _taps(depth.shape[1], hw[1])
    cols = depth[:, left] * (1 - dx) + depth[:, right] * dx
    return cols[top] * (1 - dy)[:, None] + cols[bottom] * dy[:, None]


def _taps(size_in: int, size_out: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Along one axis: the two source indices of each output position and the second one's
    weight; the source position is (i + 0.5) * in / out - 0.5, clamped at 0, as torch's."""
    scale = np.float32(size_in / size_out)
    src = np.maximum((np.arange(size_out, dtype=np.float32) + 0.5) * scale - 0.5, 0)
    low = np.minimum(src.astype(np.int64), size_in - 1)
    return (low, np.minimum(low + 1, size_in - 1)), (src - low).astype(np.float32)


class OnnxPredictor:
    """An exported ONNX file (`fcrn-export`) on onnxruntime: no torch in the process."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ONNX file (make one with fcrn-export --onnx)")
        try:
            self.session = ort.InferenceSession(str(path), providers=_providers(ort))
        except Exception as e:  # onnxruntime raises its own types for any unreadable model
            raise ValueError(f"{path}: not a loadable ONNX model ({e})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        hw = meta.get("input_hw")
        self.input_hw = tuple(int(v) for v in hw.split(",")) if hw else None
        self.default_batch = GPU_BATCH if "CUDAExecutionProvider" in _providers(ort) else CPU_BATCH

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), np.float32) / np.float32(255.0)
        native = self.session.run(None, {"rgb": x})[0][:, 0]
        return np.stack([_resize(d, rgb.shape[1:3]) for d in native])

    def upsample(self, depth: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        return _resize(depth, hw)


def _providers(ort: object) -> list[str]:
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def load_predictor(model: str) -> Predictor:
    """The backend for ``model``: a ``.onnx`` file, an MLflow URI, or a model file."""
    if model.endswith(".onnx"):
        return OnnxPredictor(Path(model))
    return TorchPredictor(model)
