"""The training loop on a tiny HDF5 split: resume is exact, bad data stops it, keys isolate runs."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from e2e import REPO, write_h5
from torch.utils.data import DistributedSampler

from pipeline.config import Params, parse_params
from pipeline.data.dataset import split_rows
from pipeline.identity import TrainingIdentity
from pipeline.io import md5sum
from pipeline.model.loss import get_loss
from pipeline.runtime import Runtime, resolve_precision, seed_everything
from pipeline.train import LOG_COLUMNS, TrainingDiverged, TrainOutputs, train

STORED_HW, CROP_HW = (68, 88), (64, 80)


def tiny_params(**train: object) -> Params:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"]["encoder"] = "resnet18"  # what the loop does is the same; 4.6x fewer bytes
    raw["train"].update({"epochs": 2, "batch_size": 2, "workers": 0, "precision": "fp32"})
    raw["train"].update(train)
    return parse_params(raw)


def write_train_h5(path: Path, n: int = 6, seed: int = 0) -> Path:
    """A train.h5 in the preprocess layout: depth grows towards the top, RGB darkens with it."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(4.0, 1.0, STORED_HW[0], dtype=np.float32)[:, None]
    depth = np.broadcast_to(rows, STORED_HW) * rng.uniform(0.8, 1.2, (n, 1, 1)).astype(np.float32)
    rgb = np.clip(255 - depth[..., None] * 50 + rng.normal(0, 5, (n, *STORED_HW, 3)), 0, 255)
    return write_h5(
        path,
        {"resize_hw": STORED_HW, "crop_hw": CROP_HW},
        rgb=rgb.astype(np.uint8),
        depth=depth.astype(np.float32),
        index=np.arange(n, dtype=np.int64),
    )


def outputs(root: Path) -> TrainOutputs:
    return TrainOutputs(
        root / "fcrn.pt", root / "train_log.csv", root / "speed.json", root / "checkpoints"
    )


def run(
    params: Params, h5: Path, out: TrainOutputs, on_epoch=None, rt: Runtime | None = None
) -> dict[str, float]:
    seed_everything(params.train.seed, params.train.deterministic)
    rt = rt or Runtime(torch.device("cpu"), None, False)
    key = TrainingIdentity.of(params, h5, rt.world_size).key
    return train(params.model, params.train, h5, out, rt, key, on_epoch)


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted(module_tmp: Callable[[str], Path]) -> tuple[Path, TrainOutputs, Path]:
    """train.h5, an uninterrupted run's outputs, and the folder of the same run killed after its
    first epoch (tests resume copies of it: `resumable`). Trained once for the module."""
    root = module_tmp("interrupted")
    h5 = write_train_h5(root / "train.h5")
    straight, killed = outputs(root / "straight"), outputs(root / "killed")
    run(tiny_params(), h5, straight)

    def kill_after_first_epoch(row: dict[str, float]) -> None:
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        run(tiny_params(), h5, killed, kill_after_first_epoch)
    assert not killed.model.exists(), "outputs appear only when training finished"
    assert len(list(killed.checkpoint_dir.glob("train-*.pt"))) == 1
    return h5, straight, killed.model.parent


def resumable(interrupted: tuple[Path, TrainOutputs, Path], dest: Path) -> TrainOutputs:
    """A copy, at ``dest``, of the killed run's folder, hard-linked: copying its 770 MB checkpoint
    would cost what training it did. Training replaces files (atomic renames), never writes into
    them; a test that damages one must replace it too."""
    shutil.copytree(interrupted[2], dest, copy_function=os.link)
    return outputs(dest)


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(
    interrupted: tuple[Path, TrainOutputs, Path], tmp_path: Path
) -> None:
    h5, straight, _ = interrupted
    resumed = resumable(interrupted, tmp_path / "resumed")
    params = tiny_params()
    run(params, h5, resumed)

    assert md5sum(resumed.model) == md5sum(straight.model)
    assert resumed.log_csv.read_text() == straight.log_csv.read_text()
    assert list(resumed.checkpoint_dir.iterdir()) == [], "a finished run leaves no checkpoint"
    header = straight.log_csv.read_text().splitlines()[0]
    assert header.split(",") == list(LOG_COLUMNS)
    assert len(straight.log_csv.read_text().splitlines()) == 1 + params.train.epochs


def test_checkpoint_of_other_params_is_never_resumed(tmp_path: Path) -> None:
    h5 = write_train_h5(tmp_path / "train.h5")
    out = outputs(tmp_path)
    out.checkpoint_dir.mkdir()
    stale = out.checkpoint_dir / "train-0123456789abcdef.pt"
    stale.write_bytes(b"made with other params")
    run(tiny_params(epochs=1), h5, out)
    assert not stale.exists()
    assert out.model.is_file()


def test_training_identity_is_params_data_and_world_size(tmp_path: Path) -> None:
    """The key a checkpoint resumes under and an MLflow run continues under."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_bytes(b"one split")
    b.write_bytes(b"another split")
    params = tiny_params()
    one = TrainingIdentity.of(params, a, 1)
    assert one == TrainingIdentity.of(params, a, 1) and one.data_md5 == md5sum(a)
    eigen = params.eval.model_copy(update={"protocol": "eigen"})
    assert one.key == TrainingIdentity.of(params.model_copy(update={"eval": eigen}), a, 1).key
    assert one.key != TrainingIdentity.of(tiny_params(lr=0.1), a, 1).key
    assert one.key != TrainingIdentity.of(params, b, 1).key
    assert one.key != TrainingIdentity.of(params, a, 2).key


def test_nan_in_training_data_stops_with_epoch_and_step(tmp_path: Path) -> None:
    h5 = write_train_h5(tmp_path / "train.h5")
    with h5py.File(h5, "r+") as f:
        depth = f["depth"][()]
        depth[:, 30:34, 40:44] = np.nan
        f["depth"][...] = depth
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1: non-finite RGB or depth"):
        run(tiny_params(), h5, outputs(tmp_path))
    assert not (tmp_path / "fcrn.pt").exists()


def test_too_few_images_for_one_batch(tmp_path: Path) -> None:
    h5 = write_train_h5(tmp_path / "train.h5", n=3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        run(tiny_params(batch_size=8), h5, outputs(tmp_path))


@pytest.mark.parametrize(
    ("precision", "expected"),
    [("fp32", (None, False)), ("bf16", (torch.bfloat16, True))],
)
def test_explicit_precision(precision: str, expected: tuple) -> None:
    assert resolve_precision(precision, torch.device("cpu")) == expected
    assert resolve_precision(precision, torch.device("cuda")) == expected


def test_auto_precision_uses_bf16_only_where_it_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("auto", torch.device("cuda")) == (torch.bfloat16, True)
    for native in (True, False):
        monkeypatch.setattr("pipeline.runtime.cpu_has_native_bf16", lambda native=native: native)
        dtype = torch.bfloat16 if native else None
        assert resolve_precision("auto", torch.device("cpu")) == (dtype, native)


def step_of(params: Params, h5: Path, image: int, epoch: int = 0) -> int:
    """The 0-based step of ``epoch`` whose batch holds ``image`` (the sampler's seeded order)."""
    with h5py.File(h5, "r") as f:
        n = len(f["index"])
    rows, _ = split_rows(n, params.train.val_fraction, params.train.seed)
    sampler = DistributedSampler(range(len(rows)), 1, 0, shuffle=True, seed=params.train.seed)
    sampler.set_epoch(epoch)
    return list(sampler).index(list(rows).index(image)) // params.train.batch_size


@pytest.mark.parametrize("data_on", ["loader", "device"])
@pytest.mark.parametrize("broken", ["nan depth", "no valid depth"])
def test_bad_batch_is_reported_at_its_own_step_not_where_noticed(
    tmp_path: Path, data_on: str, broken: str
) -> None:
    h5 = write_train_h5(tmp_path / "train.h5", n=10)
    params = tiny_params(batch_size=1, sync_every=100, data_on=data_on)
    image = next(i for i in range(10) if 2 <= step_of(params, h5, i) < 8)  # not the first, last
    with h5py.File(h5, "r+") as f:
        f["depth"][image] = np.nan if broken == "nan depth" else 0.0
    expected = "non-finite RGB or depth" if broken == "nan depth" else "loss is nan"
    step = step_of(params, h5, image) + 1
    with pytest.raises(TrainingDiverged, match=rf"epoch 1, step {step}: {expected}.*\[{image}\]"):
        run(params, h5, outputs(tmp_path))


def test_device_path_trains_the_same_weights_as_the_loader_path(tmp_path: Path) -> None:
    h5 = write_train_h5(tmp_path / "train.h5")
    models = []
    for data_on in ("loader", "device"):
        out = outputs(tmp_path / data_on)
        run(tiny_params(data_on=data_on, epochs=1), h5, out)
        models.append(md5sum(out.model))
    assert models[0] == models[1]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_checkpoint_is_deleted_and_training_starts_over(
    interrupted: tuple[Path, TrainOutputs, Path],
    tmp_path: Path,
    damage: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h5, straight, _ = interrupted
    damaged = resumable(interrupted, tmp_path / "damaged")
    (ckpt,) = damaged.checkpoint_dir.glob("train-*.pt")
    data = ckpt.read_bytes()
    ckpt.unlink()  # a new file: the hard-linked original belongs to the other tests
    ckpt.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x80garbage" * 99)
    capsys.readouterr()
    run(tiny_params(), h5, damaged)
    err = capsys.readouterr().err
    assert f"warning: {ckpt}: unreadable checkpoint" in err and "starts over" in err
    assert md5sum(damaged.model) == md5sum(straight.model)
    assert list(damaged.checkpoint_dir.iterdir()) == []


HOST_READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


@contextmanager
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """A list that grows by one per device-to-host read: on CUDA each sync the sync debug mode
    flags; on the CPU each call of a Tensor method that would be one on an accelerator."""
    if not torch.cuda.is_available():
        calls: list[object] = []
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)

            def counting(self, *args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counting)
        yield calls
        return
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        torch.cuda.set_sync_debug_mode("default")


def reads_per_step(monkeypatch: pytest.MonkeyPatch, params: Params, h5: Path) -> list[int]:
    """Host reads after each training step, up to the next step's loss, over one epoch (on the
    GPU where there is one, with the split held on it)."""
    marks: list[int] = []
    real = get_loss(params.train.loss)
    with host_reads(monkeypatch) as reads:

        def marking_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            marks.append(len(reads))
            return real(pred, target)

        monkeypatch.setattr("pipeline.train.run.get_loss", lambda name: marking_loss)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        run(params, h5, outputs(h5.parent), rt=Runtime(device, None, False))
    return [after - before for before, after in itertools.pairwise(marks)]


def test_the_step_loop_reads_from_the_device_only_every_sync_every_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h5 = write_train_h5(tmp_path / "train.h5", n=10)  # 9 training images, 9 steps
    params = tiny_params(batch_size=1, epochs=1, sync_every=4, val_fraction=0.1, data_on="auto")
    reads = reads_per_step(monkeypatch, params, h5)
    assert len(reads) == 8
    # After the first step (timed apart: compile, autotuning) and after steps 4 and 8; the last
    # step's read comes with the epoch's end (not counted: validation follows).
    assert [i for i, n in enumerate(reads) if n] == [0, 3, 7]
    assert max(reads) <= 3  # the first bad step, its kind, the running loss


@pytest.mark.slow
def test_compiled_model_trains_and_its_first_step_is_timed_apart(tmp_path: Path) -> None:
    h5 = write_train_h5(tmp_path / "train.h5")
    out = outputs(tmp_path)
    run(tiny_params(compile=True, epochs=1), h5, out)
    speed = json.loads(out.speed_json.read_text())
    assert speed["compile"] is True
    assert speed["first_step_seconds"] > 1.0  # a compile takes seconds at least
    assert speed["first_step_seconds"] < speed["train_seconds"]
    assert out.model.is_file()
