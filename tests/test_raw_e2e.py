"""End to end: `dvc exp run -S data.train_source=raw` on a tiny raw twin served from 127.0.0.1.

The mirror holds the twin's labeled file, splits.mat, archives and their ``.md5`` files; each
archive's first transfer breaks halfway. The run is SIGKILLed once a scene of the raw train.h5
is finished, then run again: it must not redo that scene, and must end with the train.h5 an
uninterrupted build gives, the self-check metric, and no temporary or resume file left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e import TINY, edited_params, env, make_project, run
from mirror import nyu_params, serving

from pipeline.config import PreprocessConfig, RawTwinConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.raw.train_split import preprocess_raw
from pipeline.data.synthetic.raw_twin import generate_raw_twin
from pipeline.io import md5sum

pytestmark = pytest.mark.slow

TWIN = RawTwinConfig(scenes=4, frames=8, labeled_per_scene=2)


def _published(served: Path) -> None:
    generate_raw_twin(served, served, TWIN, seed=0, test_fraction=0.25)
    for archive in served.glob("*.zip"):
        (served / f"{archive.name}.md5").write_text(f"{md5sum(archive)}  {archive.name}\n")


def _scene_done(project: Path) -> bool:
    return any(project.glob("data/processed/.raw-scenes-*/*.h5"))


def test_exp_run_on_raw_frames_survives_a_cut_and_a_kill(tmp_path: Path) -> None:
    served = tmp_path / "served"
    _published(served)
    archives = sorted(a.stem for a in served.glob("*.zip"))
    with serving(served, cut=".zip") as mirror:
        changes = dict(TINY)
        changes.update(
            {
                **nyu_params(mirror.url, served, retries=2),
                "data.raw.base_url": mirror.url,
                "data.raw.archives": archives,
                "data.raw.step": 1,
            }
        )
        project = make_project(tmp_path / "project", changes)
        cmd = ["dvc", "exp", "run", "-S", "data.train_source=raw"]
        killed = subprocess.Popen(
            cmd,
            cwd=project,
            env=env(),
            start_new_session=True,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while not _scene_done(project) and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert killed.poll() is None, killed.communicate()[0]
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        finished = sorted(p.stem for p in project.glob("data/processed/.raw-scenes-*/*.h5"))
        assert finished

        rerun = run(cmd, project)
        output = rerun.stdout + rerun.stderr
        assert f"raw {finished[0]}" not in output  # the finished scene was not redone
        for stage in ("raw_frames", "preprocess", "validate", "raw_selfcheck", "train", "register"):
            assert stage in output

    for archive in archives:  # each archive: its .md5, a transfer cut halfway, the resume
        assert mirror.requests.count(f"{archive}.zip") == 2
        assert f"{archive}.zip.md5" in mirror.requests

    data = project / "data"
    assert sorted(p.name for p in (data / "processed").iterdir()) == ["test.h5", "train.h5"]
    leftovers = [p for p in data.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert not leftovers and not list((data / "downloads").rglob(".*"))

    reference = preprocess_raw(
        data / "raw" / LABELED_NAME,
        data / "raw" / SPLITS_NAME,
        data / "raw" / "raw_frames.csv",
        data / "downloads" / "nyu_raw" / "scenes",
        tmp_path / "reference",
        PreprocessConfig(
            resize_hw=TINY["data.preprocess.resize_hw"], crop_hw=TINY["data.preprocess.crop_hw"]
        ),
    )
    assert md5sum(data / "processed" / "train.h5") == md5sum(reference[0])

    selfcheck = json.loads((project / "reports" / "raw_selfcheck.json").read_text())
    assert selfcheck["frames"] > 0 and selfcheck["within_1cm_min"] == 1.0
    validation = json.loads((project / "reports" / "validation.json").read_text())
    assert validation["success"] and validation["thresholds"]["raw_min_valid_fraction"] == 0.2
    assert validation["statistics"]["train"]["images"] == 3 * TWIN.frames  # 3 training scenes
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    assert "reports/raw_selfcheck.json" in json.dumps(metrics)
    assert json.loads((project / "reports" / "registration.json").read_text())

    # A new step changes the frame list's stage only (and, through its output, what reads it);
    # `params` re-checks any edit of params.yaml and writes the same output; `register` asks
    # the tracking store on every run (always changed), whatever changed.
    with edited_params(project, {"data.train_source": "raw", "data.raw.step": 2}):
        status = json.loads(run(["dvc", "status", "--json"], project).stdout)
    assert status.pop("register") == ["always changed"], status
    assert set(status) == {"params", "raw_frames"}, status
