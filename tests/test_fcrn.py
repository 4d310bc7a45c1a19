"""FCRN: shape, parameter count, naive == fast for the whole model, encoder weight loading, the
ResNet-18 variant."""

from pathlib import Path

import pytest
import torch
from e2e import closed_url
from torchvision.models import resnet50

from pipeline.config import load_params
from pipeline.model import FCRN, EncoderWeightsUnavailable, count_parameters
from pipeline.model.build import build_model
from pipeline.model.fcrn import imagenet_weights_path
from pipeline.model.io import read_model, save_model


@pytest.fixture(scope="module")
def upproj() -> FCRN:
    torch.manual_seed(0)
    return FCRN()


def test_paper_shape_and_parameter_count(upproj: FCRN):
    # 23,508,032 encoder + 2,100,224 bridge + 37,955,200 decoder + 577 head (derived by hand).
    assert count_parameters(upproj) == 63_564_033
    assert abs(count_parameters(upproj) - 63.6e6) < 0.1e6
    with torch.no_grad():
        assert upproj.eval()(torch.rand(1, 3, 228, 304)).shape == (1, 1, 128, 160)


def test_resnet18_variant_shape_parameters_and_model_file(tmp_path: Path):
    # 11,176,512 encoder (torchvision's resnet18 without fc) + 131,840 bridge (512 -> 256)
    # + 2,373,280 decoder (256 -> 16) + 145 head.
    cfg = load_params().model.model_copy(update={"encoder": "resnet18"})
    built = build_model(cfg, out_bias=1.0, weights_dir=tmp_path)
    assert count_parameters(built.model) == 13_681_777
    with torch.no_grad():
        assert built.model.eval()(torch.rand(1, 3, 228, 304)).shape == (1, 1, 128, 160)
    save_model(built.model, built.config, tmp_path / "r18.pt", (240, 320), (228, 304))
    loaded, state = read_model(tmp_path / "r18.pt").model.state_dict(), built.model.state_dict()
    assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    # ResNet-50 files record no encoder: the default model's bytes are those of before it.
    assert "encoder" not in build_model(load_params().model, 1.0, tmp_path).config


@pytest.mark.parametrize("decoder", ["upproj", "upconv"])
def test_whole_model_naive_equals_fast(decoder: str):
    torch.manual_seed(0)
    fast = FCRN(decoder, fast=True, final_relu=False)
    naive = FCRN(decoder, fast=False, final_relu=False)
    naive.load_state_dict(fast.state_dict())
    x = torch.rand(2, 3, 100, 130)  # encoder output 4x5: an odd width through the decoder
    # Train mode: BN uses batch statistics, so outputs are O(1) and 1e-4 is a tight bound.
    with torch.no_grad():
        y_fast, y_naive = fast(x), naive(x)
    assert y_fast.shape == (2, 1, 64, 80)
    assert (y_fast - y_naive).abs().max() < 1e-4


def test_final_relu_and_out_bias():
    torch.manual_seed(0)
    model = FCRN("upconv", final_relu=False, out_bias=2.5)
    assert model.head.bias.item() == 2.5
    with torch.no_grad():
        model.head.bias.fill_(-100.0)
        assert model(torch.rand(1, 3, 64, 64)).max() < 0
        model.final_relu = True
        assert model(torch.rand(1, 3, 64, 64)).max() == 0


def test_normalisation_is_imagenet_and_not_saved(upproj: FCRN):
    assert upproj.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert upproj.std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])
    assert "mean" not in upproj.state_dict()


def test_bad_decoder_names_value():
    with pytest.raises(ValueError, match="upsample"):
        FCRN("upsample")


def test_encoder_weights_from_path(tmp_path: Path):
    torch.manual_seed(1)
    reference = resnet50()
    path = tmp_path / "r50.pt"
    torch.save(reference.state_dict(), path)
    model = FCRN("upconv", encoder_weights=str(path))
    assert torch.equal(model.encoder.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert torch.equal(model.encoder.bn1.running_var, reference.bn1.running_var)


def test_encoder_weights_bad_files(tmp_path: Path):
    with pytest.raises(ValueError, match="imagenett"):
        FCRN(encoder_weights="imagenett")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        FCRN(encoder_weights=str(garbage))
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pt"):
        FCRN(encoder_weights=str(wrong))


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh torch cache, and HTTP(S) sent to a closed port on 127.0.0.1: a real, fast
    connection failure on any machine, with or without internet (urllib honours these)."""
    closed = closed_url()
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, closed)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_imagenet_offline_error_names_url_and_path(offline: Path):
    expected = offline / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert imagenet_weights_path() == expected
    with pytest.raises(EncoderWeightsUnavailable) as info:
        FCRN(encoder_weights="imagenet")
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in str(info.value)
    assert str(expected) in str(info.value)
    assert not expected.exists()


def test_imagenet_cached_file_loads_without_download(offline: Path):
    torch.manual_seed(2)
    reference = resnet50()
    imagenet_weights_path().parent.mkdir(parents=True)
    torch.save(reference.state_dict(), imagenet_weights_path())
    model = FCRN(encoder_weights="imagenet")
    assert torch.equal(model.encoder.conv1.weight, reference.conv1.weight)
