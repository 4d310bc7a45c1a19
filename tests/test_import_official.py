"""Importing the authors' weights: a real TF checkpoint, the bundle, zip and .npy formats to the
same state_dict, refusals that name the tensor, the CLI, and the model file it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from e2e import BIN
from official_reference import random_weights, write_bundle, write_npy, write_zip
from PIL import Image
from test_official import tf_shapes

from pipeline.model.fcrn import FCRN
from pipeline.model.import_official import read_official, state_dict_from_tf
from pipeline.model.io import load_model, model_bytes, read_model, save_model
from pipeline.model.official import OfficialFCRN
from pipeline.model.tf_checkpoint import CheckpointError

TF_FIXTURE = Path(__file__).parent / "data/tf_bundle/tiny.ckpt"


def test_reads_a_checkpoint_written_by_tensorflow():
    """tests/data/tf_bundle was written by TensorFlow 2.21 (tensorflow-cpu in a throwaway venv,
    never a dependency of this project) with this script::

        import numpy as np, tensorflow as tf
        tf.compat.v1.disable_eager_execution()
        names = []
        for layer in ["conv1", "res2a_branch1", "res2a_branch2a", "res2a_branch2b",
                      "layer2x_br1_ConvB", "ConvPred"]:
            names.append((f"{layer}/weights", (2, 3, 4, 5), np.float32))
            names.append((f"{layer}/biases", (5,), np.float32))
        for bn in ["bn_conv1", "bn2a_branch1", "layer1_BN"]:
            for p in ["mean", "variance", "scale", "offset"]:
                names.append((f"{bn}/{p}", (5,), np.float32))
        names += [("x_0", (6,), np.int64), ("x_1_3", (2, 3), np.int64),
                  ("scalar", (), np.float64)]
        vs = []
        for i, (n, shape, dt) in enumerate(names):
            size = int(np.prod(shape))
            value = (np.arange(size, dtype=np.float64) * 0.5 + i).reshape(shape).astype(dt)
            vs.append(tf.compat.v1.Variable(value, name=n))
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session() as s:
            s.run(tf.compat.v1.global_variables_initializer())
            saver.save(s, "tests/data/tf_bundle/tiny.ckpt", write_meta_graph=False,
                       write_state=False)

    27 keys: more than one restart interval (16) of the index block's prefix compression.
    """
    tensors = read_official(TF_FIXTURE)
    layers = ["conv1", "res2a_branch1", "res2a_branch2a", "res2a_branch2b"]
    layers += ["layer2x_br1_ConvB", "ConvPred"]
    names = [(f"{layer}/{p}", shape) for layer in layers for p, shape in
             (("weights", (2, 3, 4, 5)), ("biases", (5,)))]  # fmt: skip
    names += [(f"{bn}/{p}", (5,)) for bn in ("bn_conv1", "bn2a_branch1", "layer1_BN")
              for p in ("mean", "variance", "scale", "offset")]  # fmt: skip
    names += [("x_0", (6,)), ("x_1_3", (2, 3)), ("scalar", ())]
    assert sorted(tensors) == sorted(n for n, _ in names)
    for i, (name, shape) in enumerate(names):
        expected = np.arange(int(np.prod(shape))) * 0.5 + i
        assert tensors[name].shape == shape
        np.testing.assert_array_equal(tensors[name].ravel(), expected.astype(tensors[name].dtype))
    assert tensors["conv1/weights"].dtype == np.float32
    assert tensors["x_0"].dtype == np.int64 and tensors["scalar"].dtype == np.float64


@pytest.fixture(scope="module")
def official_files(module_tmp: Callable[[str], Path]):
    """Random weights in all three formats (full size: ~254 MB each, in a temp folder)."""
    root = module_tmp("official")
    weights = random_weights(tf_shapes(), seed=3)
    write_bundle(root / "NYU_FCRN.ckpt", weights)
    write_npy(root / "NYU_ResNet-UpProj.npy", weights)
    write_zip(root / "NYU_FCRN-checkpoint.zip", weights)
    return root, weights


def test_all_formats_import_to_identical_state_dicts(official_files):
    root, weights = official_files
    expected = state_dict_from_tf(weights, "weights")
    for src in ("NYU_FCRN.ckpt", "NYU_FCRN-checkpoint.zip", "NYU_ResNet-UpProj.npy"):
        state = state_dict_from_tf(read_official(root / src), src)
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], expected[k]) for k in expected), src
    assert torch.equal(
        expected["layers.conv1.weight"],
        torch.from_numpy(weights["conv1/weights"]).permute(3, 2, 0, 1),
    )
    assert torch.equal(expected["layers.bn_conv1.running_var"],
                       torch.from_numpy(weights["bn_conv1/variance"]))  # fmt: skip


@pytest.mark.slow  # two console scripts in subprocesses
def test_cli_writes_a_model_file_that_predicts_anywhere(official_files, tmp_path: Path):
    root, weights = official_files
    out = tmp_path / "models/fcrn-official.pt"
    cmd = [
        str(BIN / "fcrn-import-official"),
        str(root / "NYU_FCRN-checkpoint.zip"),
        "--out",
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = read_model(out)
    assert isinstance(loaded.model, OfficialFCRN)
    assert (loaded.input_hw, loaded.crop_hw) == ((240, 320), (228, 304))
    expected = state_dict_from_tf(weights, "weights")
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in expected.items())
    # fcrn-predict from a folder without params.yaml: the frame size comes from the file.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(elsewhere / "photo.png")
    cmd = [str(BIN / "fcrn-predict"), "--model", str(out), "--out", "depth", "photo.png"]
    result = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with Image.open(elsewhere / "depth/photo.png") as im:
        assert im.size == (80, 60)
    # `python -m` works too, and a bad source is one error line naming it.
    missing = tmp_path / "nothing.ckpt"
    cmd = [sys.executable, "-m", "pipeline.model.import_official", str(missing), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_damaged_files_are_named(official_files, tmp_path: Path):
    root, _ = official_files
    index = tmp_path / "bad.ckpt.index"
    index.write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError, match=r"bad\.ckpt: not a TensorFlow checkpoint index"):
        read_official(tmp_path / "bad.ckpt")
    # A data shard cut short.
    (tmp_path / "cut.ckpt.index").write_bytes((root / "NYU_FCRN.ckpt.index").read_bytes())
    with open(root / "NYU_FCRN.ckpt.data-00000-of-00001", "rb") as f:
        (tmp_path / "cut.ckpt.data-00000-of-00001").write_bytes(f.read(1 << 20))
    with pytest.raises(CheckpointError, match="data shard 0 ends inside"):
        read_official(tmp_path / "cut.ckpt")
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"PK nope")
    with pytest.raises(CheckpointError, match=r"x\.zip: not a readable checkpoint archive"):
        read_official(not_zip)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_npy_with_code_is_refused(tmp_path: Path):
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array({"conv1": {"weights": _RunsCode()}}, dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"evil\.npy: .*refusing to load posix\.system"):
        read_official(evil)


def test_model_file_formats(tmp_path: Path):
    torch.manual_seed(0)
    config = {"decoder": "upconv", "fast": True, "final_relu": True, "out_bias": 1.0}
    model = FCRN(**config)
    # Format 1 (before input sizes were recorded) still loads; its sizes are unknown.
    old = tmp_path / "v1.pt"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(
        {"format": 1, "config": {**config, "encoder_weights": "none"}, "state_dict": state}, old
    )
    loaded = read_model(old)
    assert isinstance(loaded.model, FCRN) and loaded.input_hw is None
    assert torch.equal(loaded.model.head.bias, model.head.bias)
    new = tmp_path / "v2.pt"
    save_model(model, config, new, (102, 136), (96, 128))
    assert (read_model(new).input_hw, read_model(new).crop_hw) == ((102, 136), (96, 128))
    assert model_bytes(model, config, (1, 2), (1, 2)) == model_bytes(model, config, (1, 2), (1, 2))
    for payload, what in [({"format": 0, "config": {}}, "format 0"), ([1, 2], "format None")]:
        bad = tmp_path / "bad.pt"
        torch.save(payload, bad)
        with pytest.raises(ValueError, match=rf"bad\.pt: .*\({what}, readable: 1, 2\).*dvc repro"):
            load_model(bad)
