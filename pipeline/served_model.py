"""The model as MLflow serves it: the network plus the upsampling to the input size, logged in
MLflow's pt2 format so that `models:/NAME@ALIAS` loads without this repo's code.

Kept apart from `pipeline.registry` because it needs torch (seconds to import): `register` imports
it only when there is a new version to make, not for its check that the store already has one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from torch import nn

from pipeline.io import link_or_copy
from pipeline.model.io import MODEL_FILE_NAME, load_model
from pipeline.onnx_export import ONNX_NAME, export_onnx


class DepthAtInputSize(nn.Module):
    """The served graph: (N, 3, H, W) float32 RGB in [0, 1] -> (N, H, W) depth in metres,
    upsampled as `pipeline.inference.predict_depth` does, so REST answers match fcrn-predict."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def log_model(model_path: Path, input_hw: tuple[int, int], onnx: bool = True) -> str:
    """Log the model (eval mode, pt2; with ``onnx`` its ONNX export too) into the active run;
    return its model URI.

    The version carries the model file as well: `fcrn-predict` builds the network from it in
    about a second, where loading the pt2 program takes over ten (torch.export parses each node's
    symbolic shapes with sympy). The cost is the weights stored twice per version.
    """
    net = DepthAtInputSize(load_model(model_path)).eval()
    # -1 marks the dims torch.export keeps dynamic; a batch of 2 keeps N dynamic (a size-1 dim
    # is exported as fixed). A numpy example (a tensor drops the pyfunc flavour) of 64x80 keeps
    # the version small; requirements are explicit, inferring them costs a subprocess.
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]),
    )
    example = np.random.default_rng(0).random((2, 3, 64, 80), dtype=np.float32)
    requirements = [
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        extra = [link_or_copy(model_path, Path(tmp) / MODEL_FILE_NAME)]  # a link: no 250 MB copy
        if onnx:
            extra.append(export_onnx(str(model_path), Path(tmp) / ONNX_NAME))
        return _log(net, extra, signature, example, requirements, input_hw)


def _log(
    net: nn.Module,
    extra_files: list[Path],
    signature: ModelSignature,
    example: np.ndarray,
    requirements: list[str],
    input_hw: tuple[int, int],
) -> str:
    """`mlflow.pytorch.log_model`; ``extra_files`` (the model file, the ONNX export) land in the
    version's ``extra_files/``, where `fcrn-predict` and `fcrn-export --onnx` fetch them.

    MLflow's serving-input check is off: it reloads the pt2 program from disk (6-8 s of a
    10-12 s call on 2 cores) only to log a warning if the example fails, never to stop one; the
    serving test runs a registered version under `mlflow models serve` instead.
    """
    info = mlflow.pytorch.log_model(
        net,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
        serialization_format="pt2",
        extra_files=[str(f) for f in extra_files],
        metadata={
            "input": "float32 RGB in [0, 1], N x 3 x H x W",
            "output": "depth in metres, N x H x W",
            "input_hw": list(input_hw),  # the training frame size: resize inputs to it first
        },
        validate_serving_input=False,
    )
    return info.model_uri
