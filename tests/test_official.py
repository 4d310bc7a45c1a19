"""The official graph in PyTorch equals an independent reference of the TF graph, and each of its
TF-specific choices matters (changing one to the torchvision / PyTorch habit breaks equality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from official_reference import random_weights, reference_forward

from pipeline.model import count_parameters
from pipeline.model import official as official_module
from pipeline.model.import_official import official_names, state_dict_from_tf
from pipeline.model.official import OfficialFCRN, tf_same_pad
from pipeline.model.tf_checkpoint import CheckpointError


def tf_shapes() -> dict[str, tuple[int, ...]]:
    """The official variables' names and TF shapes (HWIO kernels)."""
    model = OfficialFCRN()
    state = model.state_dict()
    return {
        tf: tuple(state[pt].permute(2, 3, 1, 0).shape) if state[pt].ndim == 4 else state[pt].shape
        for tf, pt in official_names(model).items()
    }


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return random_weights(tf_shapes(), seed=0)


@pytest.fixture(scope="module")
def imported(weights: dict[str, np.ndarray]) -> OfficialFCRN:
    model = OfficialFCRN()
    model.load_state_dict(state_dict_from_tf(weights, "random weights"))
    return model.eval()


def _compare(
    model: OfficialFCRN, weights, hw: tuple[int, int], ref: np.ndarray | None = None
) -> tuple[float, float]:
    """(max |diff|, max |reference|) of the model and the reference on one random image."""
    rgb = np.random.default_rng(1).random((1, *hw, 3))
    if ref is None:
        ref = reference_forward(weights, rgb * 255.0)[..., 0]
    with torch.no_grad():
        out = model(torch.from_numpy(rgb).float().permute(0, 3, 1, 2))[:, 0].double().numpy()
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max()), float(np.abs(ref).max())


def test_parameter_count_is_the_tf_graphs():
    # 63,572,737 trainable variables in the official graph (BN statistics are not trainable).
    assert count_parameters(OfficialFCRN()) == 63_572_737
    # Encoder: 53 kernels + conv1's bias + 53 BNs x 4; bridge 2 + 4; per up-projection 9 convs
    # with bias + 3 BNs x 4 (x 4 blocks); head 2.
    assert len(tf_shapes()) == (53 + 1 + 53 * 4) + (2 + 4) + 4 * (9 * 2 + 3 * 4) + 2 == 394


def test_names_cover_the_graph():
    shapes = tf_shapes()
    assert shapes["conv1/weights"] == (7, 7, 3, 64) and "conv1/biases" in shapes
    assert "res2a_branch2a/biases" not in shapes  # residual convs have no bias
    assert shapes["layer1/weights"] == (1, 1, 2048, 1024) and "layer1/biases" in shapes
    assert shapes["layer2x_br1_ConvB/weights"] == (2, 3, 1024, 512)
    assert shapes["layer2x_br2_ConvC/weights"] == (3, 2, 1024, 512)
    assert shapes["layer16x_br1_ConvD/weights"] == (2, 2, 128, 64)
    assert shapes["layer16x_Conv/weights"] == (3, 3, 64, 64)
    assert shapes["ConvPred/weights"] == (3, 3, 64, 1) and "ConvPred/biases" in shapes
    assert {"layer8x_br2_BN/mean", "bn5c_branch2c/variance"} <= shapes.keys()


@pytest.mark.parametrize(
    ("size", "stride", "expected"), [(114, 2, (0, 1)), (115, 2, (1, 1)), (57, 2, (1, 1))]
)
def test_tf_same_pad(size: int, stride: int, expected: tuple[int, int]):
    assert tf_same_pad(size, 3, stride) == expected


@pytest.mark.parametrize("hw", [(228, 304), (115, 147)], ids=["paper-228x304", "odd-115x147"])
def test_equals_reference(imported: OfficialFCRN, weights, hw: tuple[int, int]):
    diff, scale = _compare(imported, weights, hw)
    print(f"{hw}: max |diff| {diff:.3g}, max |output| {scale:.3g}")
    assert scale > 0.1  # a dead (all-zero) output would make equality trivial
    assert diff <= 1e-4 * scale


def test_equals_tensorflow_itself():
    """tests/data/official_tf_output.npz holds the graph's outputs computed by TensorFlow's own
    kernels (tests/data/make_official_tf_output.py says how) for these weights and inputs."""
    model = OfficialFCRN()
    model.load_state_dict(state_dict_from_tf(random_weights(tf_shapes(), seed=7), "seed 7"))
    model.eval()
    expected = np.load(Path(__file__).parent / "data/official_tf_output.npz")
    rng = np.random.default_rng(8)
    for hw in ((96, 128), (67, 93)):
        rgb = rng.random((1, *hw, 3)).astype(np.float32)
        with torch.no_grad():
            out = model(torch.from_numpy(rgb).permute(0, 3, 1, 2))[:, 0].numpy()
        tf_out = expected[f"{hw[0]}x{hw[1]}"]
        assert out.shape == tf_out.shape
        diff, scale = float(np.abs(out - tf_out).max()), float(np.abs(tf_out).max())
        print(f"{hw} vs TensorFlow: max |diff| {diff:.3g}, max |output| {scale:.3g}")
        assert scale > 0.1 and diff <= 1e-4 * scale


SMALL = (96, 128)  # even at the max pool's input (48x64): TF SAME pads 0 before, 1 after


@pytest.fixture(scope="module")
def small_reference(weights) -> np.ndarray:
    rgb = np.random.default_rng(1).random((1, *SMALL, 3))
    return reference_forward(weights, rgb * 255.0)[..., 0]


def _torchvision_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(x, kernel, stride, padding=1)


@pytest.mark.parametrize(
    "change",
    ["pool", "pad_B", "pad_C", "pad_D", "interleave", "stride_3x3", "bn_eps", "no_scale"],
)
def test_each_official_choice_matters(
    change: str, weights, small_reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one choice switched to the PyTorch / torchvision habit, equality fails."""
    model = OfficialFCRN()
    model.load_state_dict(state_dict_from_tf(weights, "random weights"))
    model.eval()
    diff, scale = _compare(model, weights, SMALL, small_reference)
    assert diff <= 1e-4 * scale  # unchanged: equal
    exact = {"B": (1, 1, 0, 1), "C": (0, 1, 1, 1), "D": (0, 1, 0, 1)}  # padded after
    if change == "pool":
        monkeypatch.setattr(official_module, "tf_same_max_pool", _torchvision_pool)
    elif change.startswith("pad_"):
        part = change[-1]
        monkeypatch.setitem(official_module.SUBPIXEL_PADDING, part, exact[part])
    elif change == "interleave":  # B and C swapped (a transposed sub-pixel order)
        real = official_module.interleave
        monkeypatch.setattr(official_module, "interleave", lambda a, c, b, d: real(a, b, c, d))
    elif change == "stride_3x3":
        model.layers["res3a_branch2a"].stride = (1, 1)
        model.layers["res3a_branch2b"].stride = (2, 2)
    elif change == "bn_eps":
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 1e-5
    elif change == "no_scale":
        monkeypatch.setattr(official_module, "INPUT_SCALE", 1.0)
    diff, scale = _compare(model, weights, SMALL, small_reference)
    assert diff > 1e-3 * scale, change


def test_mapping_refuses_missing_extra_and_misshaped(weights):
    missing = {k: v for k, v in weights.items() if k != "layer4x_br2_ConvC/biases"}
    with pytest.raises(CheckpointError, match=r"missing layer4x_br2_ConvC/biases"):
        state_dict_from_tf(missing, "src")
    with pytest.raises(CheckpointError, match=r"unexpected extra/weights"):
        state_dict_from_tf({**weights, "extra/weights": np.zeros(3, np.float32)}, "src")
    bad = {**weights, "conv1/weights": weights["conv1/weights"].transpose(3, 2, 0, 1)}
    with pytest.raises(CheckpointError, match=r"conv1/weights is float32 \(64, 3, 7, 7\)"):
        state_dict_from_tf(bad, "src")
    # The older interleave's integer index tables are graph constants: skipped.
    tables = {"x_0": np.arange(4), "x_3_7": np.arange(4)}
    state_dict_from_tf({**weights, **tables}, "src")
    with pytest.raises(CheckpointError, match="unexpected x_0"):
        state_dict_from_tf({**weights, "x_0": np.zeros(4, np.float32)}, "src")
