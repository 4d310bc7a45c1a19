"""The own ResNet-50/-18 builder against torchvision's: names, initial weights, forward bits."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18, resnet50

from pipeline.model.fcrn import FCRN
from pipeline.model.resnet import IMAGENET_MEAN, IMAGENET_STD, IMAGENET_URLS, resnet_encoder

TORCHVISION = {"resnet50": (resnet50, ResNet50_Weights), "resnet18": (resnet18, ResNet18_Weights)}

LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _torchvision_encoder(encoder: str = "resnet50") -> nn.Sequential:
    resnet = TORCHVISION[encoder][0](weights=None)
    return nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in LAYERS))


@pytest.mark.parametrize("encoder", sorted(TORCHVISION))
def test_same_names_weights_generator_state_and_outputs_as_torchvision(encoder: str) -> None:
    torch.manual_seed(3)
    theirs = _torchvision_encoder(encoder)
    after_theirs = torch.rand(4)  # where the generator was left for the modules built next
    torch.manual_seed(3)
    ours = nn.Sequential(OrderedDict(resnet_encoder(encoder)))
    after_ours = torch.rand(4)
    assert torch.equal(after_theirs, after_ours)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(theirs.eval()(x), ours.eval()(x))


@pytest.mark.parametrize("encoder", sorted(TORCHVISION))
def test_imagenet_facts_are_torchvisions(encoder: str) -> None:
    weights = TORCHVISION[encoder][1].IMAGENET1K_V1
    norm = weights.transforms()
    assert (
        weights.url, tuple(norm.mean), tuple(norm.std)
    ) == (IMAGENET_URLS[encoder], IMAGENET_MEAN, IMAGENET_STD)  # fmt: skip


def test_fcrn_imports_no_torchvision() -> None:
    code = "import sys, pipeline.model.fcrn; sys.exit('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("encoder", sorted(TORCHVISION))
def test_fcrn_initial_weights_are_the_torchvision_builds(encoder: str, monkeypatch) -> None:
    """A seeded FCRN (decoder included) is what the torchvision-based encoder gave."""
    torch.manual_seed(0)
    ours = FCRN(out_bias=1.5, encoder=encoder).state_dict()
    monkeypatch.setattr(
        "pipeline.model.fcrn.resnet_encoder",
        lambda name: OrderedDict((n, m) for n, m in _torchvision_encoder(name).named_children()),
    )
    torch.manual_seed(0)
    theirs = FCRN(out_bias=1.5, encoder=encoder).state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
