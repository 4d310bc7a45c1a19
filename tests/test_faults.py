"""Fault injection: each stage, run as DVC runs it, under what a real machine throws at it.

Every stage script is a row of ``STAGES`` (its command, its outputs, the inputs it needs from the
stages before it, a params edit that changes its outputs, the points at which to kill it). Each
row is run as a real subprocess on small data and must:

- rerun to the same bytes after ``kill -9`` at each point, leaving only real outputs (and no
  resume state in the caches: a finished training run keeps no checkpoint, only the MLflow run
  id that register reads, one of its ``side_files``). Outputs that hold wall-clock numbers
  (``existence_only``: train_speed.json) are compared by existence, every other by its bytes;
- meet a read-only output folder and a file-size limit with one ``error:`` line naming the file,
  exit status 1, no traceback, no segfault, and its previous outputs untouched; what a failed
  run may leave is only its resume state (``resume_state``: a partial download, the checkpoint
  of the last finished epoch), which the next run continues from;
- publish nothing when its last output cannot be published (no new first output beside an old
  second one).

A row's inputs come from an upstream project with the row's params, where the earlier rows that
make them ran (``World.inputs_of``): train and evaluate run at the tiny sizes of ``e2e.TINY``
(32x40 crops, 2 epochs; the ResNet-18 FCRN is ~55 MB at any input size), the data stages at
``SMALL``.
New stages (register) join by adding a row.

Train meets the file-size limit twice: from scratch it first hits an epoch checkpoint (the model
plus Adam's two moments: three times the model's size), and resumed after its last checkpoint
(``size_limit_resumed``) it hits the model while publishing.

Root ignores file permissions, and CI runs as root: the read-only case drops CAP_DAC_OVERRIDE
from the child's capability bounding set (``prctl``), which makes root obey the folder's mode
like any user. The file-size limit is ``RLIMIT_FSIZE``, which binds root too.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import e2e
import pytest
import yaml
from mirror import nyu_params, serving

from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.synthetic import generate
from pipeline.io import md5sum

RAW = (f"data/raw/{LABELED_NAME}", f"data/raw/{SPLITS_NAME}")
PROCESSED = ("data/processed/train.h5", "data/processed/test.h5")
SMALL = {"data.synthetic.num_images": 16, "data.synthetic.test_fraction": 0.5}
TINY = dict(e2e.TINY)  # train and evaluate: 8 rooms, 32x40 crops, 2 epochs of 2 batches of 2

# Runs `argv[3:]` with RLIMIT_FSIZE = argv[1] bytes (-1: none) and, if argv[2] == "1", without
# the capabilities that let root write where the mode says no (exec, not preexec_fn: the test
# process has server threads).
_LAUNCHER = """
import ctypes, os, resource, sys
size, drop = int(sys.argv[1]), sys.argv[2] == "1"
if size >= 0:
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
if drop and os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0):  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.argv[3], sys.argv[3:])
"""


# --- a mirror of the NYU files on 127.0.0.1: slow enough to be killed mid-transfer, resumable


@dataclass
class World:
    """What the rows draw on: a mirror serving two versions of the files, and projects under
    ``root`` where each row ran once (its reference run), and one upstream project per set of
    row params holding the inputs of the rows with those params."""

    mirror_url: str
    mirror: Path
    root: Path
    _references: dict[str, Path] = field(default_factory=dict)
    _upstreams: dict[str, tuple[Path, set[str]]] = field(default_factory=dict)

    def reference(self, stage: Stage) -> Path:
        """A project where the row ran uninterrupted, made once per row: copy it, never edit it."""
        if stage.id not in self._references:
            project = new_project(self.root / "reference" / stage.id, self, stage)
            result = run_stage(project, stage)
            assert result.returncode == 0, result.stderr
            self._references[stage.id] = project
        return self._references[stage.id]

    def inputs_of(self, stage: Stage) -> Path:
        """The upstream project with the row's params where the rows that make its inputs ran.

        A producer with the row's own params ran so in its reference run: its outputs are
        copied from there (train's for evaluate), the others run here (the data stages at the
        tiny sizes)."""
        params = stage.params(self)
        key = json.dumps(params, sort_keys=True)
        if key not in self._upstreams:
            project = self.root / "upstream" / str(len(self._upstreams))
            project.mkdir(parents=True)
            write_params(project, params)
            self._upstreams[key] = (project, set())
        project, done = self._upstreams[key]
        for row in producers(self, stage):
            if row.id in done:
                continue
            if row.params(self) == params:
                for out in row.outputs:
                    (project / out).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(self.reference(row) / out, project / out)
            else:
                result = run_stage(project, row)
                assert result.returncode == 0, f"upstream {row.id}: {result.stderr}"
            done.add(row.id)
        return project


def producers(world: World, stage: Stage) -> list[Stage]:
    """The earlier rows that make the row's inputs (and theirs), in pipeline order: for each
    input, the last earlier row that outputs it and whose params the row's params include."""
    params = stage.params(world)
    needed, chain = set(stage.inputs), []
    for row in reversed(STAGES[: STAGES.index(stage)]):
        fits = all(k in params and params[k] == v for k, v in row.params(world).items())
        if fits and needed & set(row.outputs):
            chain.insert(0, row)
            needed = (needed - set(row.outputs)) | set(row.inputs)
    assert not needed, f"{stage.id}: no earlier row makes {sorted(needed)}"
    return chain


def _nyu_params(world: World, version: str) -> dict[str, Any]:
    return nyu_params(f"{world.mirror_url}/{version}", world.mirror / version)


# --- kill points: predicates on the project folder, polled while the stage runs


def _temps(project: Path, stage: Stage) -> dict[str, int]:
    """Size of each temporary beside the stage's outputs, by the output it is for."""
    found = {}
    for out in stage.outputs:
        dest = project / out
        if dest.parent.is_dir():
            for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):  # renamed since the glob
                    found[out] = tmp.stat().st_size
    return found


def temps_created(project: Path, stage: Stage) -> bool:
    return len(_temps(project, stage)) == len(stage.outputs)


def first_half_written(project: Path, stage: Stage) -> bool:
    return _temps(project, stage).get(stage.outputs[0], 0) > 1_000_000


def last_being_written(project: Path, stage: Stage) -> bool:
    return _temps(project, stage).get(stage.outputs[-1], 0) > 0


def first_being_written(project: Path, stage: Stage) -> bool:
    """Beside the first output, a file that is not an output holds over 1 MB: a temporary being
    filled, whatever its name."""
    dest = project / stage.outputs[0]
    outputs = {project / out for out in stage.outputs}
    if dest.parent.is_dir():
        for path in dest.parent.iterdir():
            with contextlib.suppress(FileNotFoundError):  # renamed since the listing
                if path not in outputs and path.stat().st_size > 1_000_000:
                    return True
    return False


def _in_caches(project: Path, stage: Stage, pattern: str) -> list[Path]:
    return [p for cache in stage.caches for p in (project / cache).glob(pattern)]


def next_checkpoint_being_written(project: Path, stage: Stage) -> bool:
    """In the resume-state folder, a finished file (train: the epoch-1 checkpoint) and a temporary
    over 1 MB (the epoch-2 one): the rerun must resume from the one and remove the other."""
    finished = [p for p in _in_caches(project, stage, "*") if not p.name.startswith(".")]
    for tmp in _in_caches(project, stage, ".*.tmp") if finished else []:
        with contextlib.suppress(FileNotFoundError):  # renamed since the glob
            if tmp.stat().st_size > 1_000_000:
                return True
    return False


def download_half_done(project: Path, stage: Stage) -> bool:
    part = project / "data/downloads" / f"{LABELED_NAME}.part"
    return part.is_file() and part.stat().st_size > 4_000_000


@dataclass(frozen=True)
class Stage:
    """One stage script as dvc.yaml runs it, and what the fault tests need to know about it."""

    id: str
    argv: tuple[str, ...]  # script and arguments, relative to the project (script: to the repo)
    outputs: tuple[str, ...]  # published together; the fault of the last one must stop all
    inputs: tuple[str, ...] = ()  # copied from the upstream project
    params: Callable[[World], dict[str, Any]] = lambda world: {}
    changed: Callable[[World], dict[str, Any]] = lambda world: {}  # changes every output
    kill_points: tuple[Callable[[Path, Stage], bool], ...] = ()
    caches: tuple[str, ...] = ()  # folders the stage keeps between runs (not outputs)
    # Globs of what a failed run may leave in its caches for the next run to resume from.
    resume_state: tuple[str, ...] = ()
    # Files it keeps in its caches for later stages, not outputs (train: register's MLflow run).
    side_files: tuple[str, ...] = ()
    # Outputs compared by existence only in reruns (wall-clock numbers); all others by bytes.
    existence_only: tuple[str, ...] = ()
    # Bytes: below its largest output, above its first one's (where the first is not the largest),
    # and the file the error must name (a glob): the one being written when the limit hits.
    file_size_limit: int = 2_000_000
    size_limit_hits: str = ""  # every row sets it
    # A kill point after which the run only publishes, and the file it must name when it meets
    # the limit resumed from there (train: an epoch checkpoint, 3x the model with Adam's moments,
    # meets a limit below the model's size first; a resumed run meets it writing the model).
    size_limit_resumed: tuple[Callable[[Path, Stage], bool], str] | None = None


STAGES = [
    Stage(
        id="download-synthetic",
        argv=e2e.stage_argv("download"),
        outputs=RAW,
        changed=lambda world: {"data.synthetic.seed": 1},
        kill_points=(temps_created, first_half_written),
        size_limit_hits=RAW[0],
    ),
    Stage(
        id="download-http",
        argv=e2e.stage_argv("download"),
        outputs=RAW,
        params=lambda world: _nyu_params(world, "v1"),
        changed=lambda world: _nyu_params(world, "v2"),
        kill_points=(download_half_done,),
        caches=("data/downloads",),
        resume_state=("data/downloads/*.part",),
        size_limit_hits=f"data/downloads/{LABELED_NAME}.part",
    ),
    Stage(
        id="preprocess",
        argv=e2e.stage_argv("preprocess"),
        outputs=PROCESSED,
        inputs=RAW,
        changed=lambda world: {
            "data.preprocess.resize_hw": [90, 120],
            "data.preprocess.crop_hw": [84, 112],
        },
        kill_points=(temps_created, last_being_written),
        size_limit_hits=PROCESSED[1],
    ),
    Stage(
        id="validate",
        argv=e2e.stage_argv("validate"),
        outputs=("reports/validation.json", "reports/validation.html"),
        inputs=(*PROCESSED, RAW[1]),
        changed=lambda world: {"validate.max_reported_indices": 5},  # in the report, not verdict
        file_size_limit=1000,  # the JSON (~9 KB) is written first and is the larger
        size_limit_hits="reports/validation.json",
    ),
    Stage(
        id="train",
        argv=e2e.stage_argv("train"),
        outputs=("models/fcrn.pt", "reports/train_log.csv", "reports/train_speed.json"),
        inputs=(PROCESSED[0],),
        params=lambda world: TINY,
        changed=lambda world: {"train.seed": 1},
        kill_points=(next_checkpoint_being_written, first_being_written),
        caches=("checkpoints",),
        resume_state=("checkpoints/train-*.pt",),
        side_files=("checkpoints/mlflow_run.json",),
        existence_only=("reports/train_speed.json",),
        file_size_limit=20_000_000,  # the model: ~55 MB (ResNet-18 FCRN at any input size)
        size_limit_hits="checkpoints/train-*.pt",
        size_limit_resumed=(temps_created, "models/fcrn.pt"),  # killed after the last checkpoint
    ),
    Stage(
        id="evaluate",
        argv=e2e.stage_argv("evaluate"),
        outputs=("reports/metrics.json", "reports/predictions.png", "reports/train_curves.png"),
        inputs=("models/fcrn.pt", *PROCESSED, "reports/train_log.csv"),
        params=lambda world: TINY,
        # The headline and the plotted examples; train_curves.png follows the log, no param.
        changed=lambda world: {"eval.protocol": "eigen", "eval.num_examples": 1},
        kill_points=(temps_created,),
        file_size_limit=20_000,  # metrics.json ~2 KB; the PNGs ~100-250 KB
        size_limit_hits="reports/predictions.png",
    ),
]
STAGE_IDS = [stage.id for stage in STAGES]
KILL_CASES = [
    pytest.param(stage, point, id=f"{stage.id}-{point.__name__}")
    for stage in STAGES
    for point in stage.kill_points
]
SIZE_LIMIT_CASES = [
    pytest.param(stage, None, stage.size_limit_hits, id=stage.id) for stage in STAGES
] + [
    pytest.param(stage, *stage.size_limit_resumed, id=f"{stage.id}-resumed")
    for stage in STAGES
    if stage.size_limit_resumed is not None
]


def write_params(project: Path, changes: dict[str, Any]) -> None:
    """params.yaml of the repo with dotted-key ``changes`` (a ``+`` prefix adds a new key)."""
    params = yaml.safe_load((e2e.REPO / "params.yaml").read_text())
    for key, value in {**SMALL, **changes}.items():
        *parents, leaf = key.lstrip("+").split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@dataclass
class Result:
    returncode: int
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def assert_one_clean_error(self) -> str:
        """Exit 1 (not a signal: no segfault), one `error:` line, no traceback; return it."""
        assert self.returncode == 1, (self.returncode, self.stderr)
        assert "Traceback" not in self.stderr, self.stderr
        assert len(self.error_lines) == 1, self.stderr
        return self.error_lines[0]


def command(stage: Stage, file_size: int = -1, drop_root: bool = False) -> list[str]:
    script, *args = stage.argv
    inner = [sys.executable, str(e2e.REPO / script), *args]
    return [sys.executable, "-c", _LAUNCHER, str(file_size), str(int(drop_root)), *inner]


def run_stage(project: Path, stage: Stage, **limits: Any) -> Result:
    proc = subprocess.run(
        command(stage, **limits), cwd=project, capture_output=True, text=True, timeout=300
    )
    return Result(proc.returncode, proc.stderr)


def kill_at(project: Path, stage: Stage, point: Callable[[Path, Stage], bool]) -> None:
    """Start the stage and SIGKILL it (with its worker processes) once ``point`` holds."""
    proc = subprocess.Popen(
        command(stage),
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not point(project, stage):
            assert proc.poll() is None, f"{stage.id} finished before {point.__name__}"
            assert time.monotonic() < deadline, f"{stage.id} never reached {point.__name__}"
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def snapshot(project: Path, stage: Stage) -> dict[str, str]:
    """MD5 of each output that exists."""
    return {out: md5sum(project / out) for out in stage.outputs if (project / out).is_file()}


def reproducible(outputs: dict[str, str], stage: Stage) -> dict[str, str]:
    """A snapshot as a rerun must reproduce it: existence-only outputs by their presence."""
    return {out: "present" if out in stage.existence_only else md5 for out, md5 in outputs.items()}


def stray_files(project: Path, stage: Stage) -> list[str]:
    """Anything in the output folders (and caches) that is not a real output, an input (evaluate
    reads a report) or a side file."""
    folders = {(project / out).parent for out in stage.outputs}
    folders |= {project / cache for cache in stage.caches}
    real = {project / p for p in (*stage.outputs, *stage.inputs, *stage.side_files)}
    real |= {project / cache / Path(out).name for cache in stage.caches for out in stage.outputs}
    return sorted(
        str(p.relative_to(project))
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if p not in real and p.name != ".gitignore"
    )


def left_after_failure(project: Path, stage: Stage) -> list[str]:
    """Stray files, less the resume state a failed run may keep for the next one."""
    return [
        p
        for p in stray_files(project, stage)
        if not any(fnmatch.fnmatch(p, glob) for glob in stage.resume_state)
    ]


# --- fixtures


@pytest.fixture(scope="module")
def world(module_tmp: Callable[[str], Path]) -> Iterator[World]:
    mirror = module_tmp("mirror")
    generate(mirror / "v1", num_images=16, seed=0, test_fraction=0.5, workers=2)
    generate(mirror / "v2", num_images=4, seed=1, test_fraction=0.5, workers=1)
    root = module_tmp("projects")
    with serving(mirror, throttle=True) as server:
        yield World(server.url, mirror, root)


def new_project(tmp_path: Path, world: World, stage: Stage) -> Path:
    """A folder with the row's params and its inputs, as DVC would leave it before the stage."""
    project = tmp_path / "project"
    project.mkdir(parents=True)
    write_params(project, stage.params(world))
    upstream = world.inputs_of(stage) if stage.inputs else None
    for name in stage.inputs:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(upstream / name, project / name)
    return project


def with_previous_outputs(tmp_path: Path, world: World, stage: Stage) -> tuple[Path, dict]:
    """A project where the stage ran (a copy of its reference run), now with params that change
    every output."""
    project = tmp_path / "project"
    shutil.copytree(world.reference(stage), project, symlinks=True)
    write_params(project, {**stage.params(world), **stage.changed(world)})
    for cache in stage.caches:  # make the stage write again, not reuse what it kept
        shutil.rmtree(project / cache)
    return project, snapshot(project, stage)


# --- the tests


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "point"), KILL_CASES)
def test_killed_stage_reruns_to_same_outputs(
    tmp_path: Path,
    world: World,
    stage: Stage,
    point: Callable[[Path, Stage], bool],
) -> None:
    expected = reproducible(snapshot(world.reference(stage), stage), stage)
    assert sorted(expected) == sorted(stage.outputs)
    project = new_project(tmp_path, world, stage)
    kill_at(project, stage, point)
    result = run_stage(project, stage)
    assert result.returncode == 0, result.stderr
    assert reproducible(snapshot(project, stage), stage) == expected
    assert stray_files(project, stage) == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_read_only_output_folder(tmp_path: Path, world: World, stage: Stage) -> None:
    project, before = with_previous_outputs(tmp_path, world, stage)
    folder = (project / stage.outputs[0]).parent
    folder.chmod(0o555)
    try:
        result = run_stage(project, stage, drop_root=True)
    finally:
        folder.chmod(0o755)
    line = result.assert_one_clean_error()
    assert os.strerror(errno.EACCES) in line and str(folder.relative_to(project)) in line
    assert snapshot(project, stage) == before
    assert left_after_failure(project, stage) == []


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "resumed_at", "hits"), SIZE_LIMIT_CASES)
def test_file_size_limit(
    tmp_path: Path,
    world: World,
    stage: Stage,
    resumed_at: Callable[[Path, Stage], bool] | None,
    hits: str,
) -> None:
    """With the new params the first output fits the limit where the sizes allow (preprocess:
    train.h5 does, test.h5 does not; evaluate: metrics.json does, predictions.png does not): it
    must not be published alone. The error names the file being written (``hits``), not another
    output of the set (validate and train write their largest output first)."""
    project, before = with_previous_outputs(tmp_path, world, stage)
    if resumed_at is not None:
        kill_at(project, stage, resumed_at)
    result = run_stage(project, stage, file_size=stage.file_size_limit)
    line = result.assert_one_clean_error()
    assert os.strerror(errno.EFBIG) in line and "ulimit -f" in line
    named = Path(line.removeprefix("error: ").split(": ")[0])
    if named.is_absolute():
        named = named.relative_to(project)
    assert fnmatch.fnmatch(str(named), hits), line
    assert snapshot(project, stage) == before
    assert left_after_failure(project, stage) == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_last_output_failing_publishes_none(tmp_path: Path, world: World, stage: Stage) -> None:
    """A folder where the last output goes: everything is written, the publication fails."""
    project, before = with_previous_outputs(tmp_path, world, stage)
    last = project / stage.outputs[-1]
    last.unlink()
    last.mkdir()
    result = run_stage(project, stage)
    line = result.assert_one_clean_error()
    assert f"{stage.outputs[-1]}: {os.strerror(errno.EISDIR)}" in line
    first = stage.outputs[0]
    assert snapshot(project, stage)[first] == before[first]
    last.rmdir()
    assert left_after_failure(project, stage) == []


# Per section, a bad value (or an unknown key) and the dotted key the error must name.
BAD_PARAMS = {
    "data.source": "kinect",
    "data.nyu.retries": -1,
    "data.synthetic.num_images": 1,
    "data.preprocess.crop_hw": "large",
    "validate.mostly": 2.0,
    "model.decoder": "deconv",
    "+model.fastt": True,
    "train.lr": 0.0,
    "eval.protocol": "nyu",
    "mlflow.experiment": "",
    "+extra": 1,
}


@pytest.mark.parametrize(("key", "value"), BAD_PARAMS.items(), ids=list(BAD_PARAMS))
def test_params_stage_names_the_bad_key(tmp_path: Path, key: str, value: object) -> None:
    write_params(tmp_path, {key: value})
    argv = [sys.executable, str(e2e.REPO / "stages/params.py"), "params.yaml", "reports/params.txt"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    Result(proc.returncode, proc.stderr).assert_one_clean_error()
    assert f"{key.lstrip('+')}:" in proc.stderr
    assert not (tmp_path / "reports/params.txt").exists()


def test_params_stage_output_ignores_values(tmp_path: Path) -> None:
    """Its output is what later stages depend on: an edit must not change it."""
    argv = [sys.executable, str(e2e.REPO / "stages/params.py"), "params.yaml", "ok.txt"]
    outputs = []
    for seed in (0, 1):
        write_params(tmp_path, {"train.seed": seed})
        subprocess.run(argv, cwd=tmp_path, check=True, timeout=60)
        outputs.append((tmp_path / "ok.txt").read_text())
    assert outputs[0] == outputs[1]


def test_bug_gets_a_traceback_and_says_so(tmp_path: Path) -> None:
    code = "from pipeline.stage import run_stage; run_stage(lambda: {}['missing'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 70
    assert "Traceback" in proc.stderr and "KeyError: 'missing'" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: this is a bug in the pipeline")


# --- the real `dvc` in a git + DVC copy of the project (its .dvc/config too)


def dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return e2e.run(["dvc", *args], project, check=check)


@pytest.fixture(scope="module")
def dvc_project(module_tmp: Callable[[str], Path]) -> Path:
    """The project run up to `validate`: every stage whose params these tests edit is cached."""
    root = e2e.make_project(module_tmp("dvc") / "project", SMALL)
    dvc(root, "repro", "validate")
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["repro", "validate"], "mlflow.experiment"),  # no stage reads mlflow yet
        (["exp", "run", "-S", "model.decoder=deconv", "validate"], "model.decoder"),
        (["exp", "run", "-S", "+model.fastt=true", "validate"], "model.fastt"),
    ],
    ids=["repro-mlflow", "exp-run-model", "exp-run-unknown-key"],
)
def test_dvc_stops_on_a_bad_key_of_any_section(
    dvc_project: Path, args: list[str], key: str
) -> None:
    params = dvc_project / "params.yaml"
    original = params.read_text()
    if args[0] == "repro":
        write_params(dvc_project, {key: ""})
    try:
        result = dvc(dvc_project, *args, check=False)
    finally:
        params.write_text(original)
    assert result.returncode != 0
    assert f"{key}:" in result.stdout + result.stderr
    assert "Running stage 'params'" in result.stdout
    assert "Running stage 'download'" not in result.stdout


@pytest.mark.slow
def test_unrelated_edit_reruns_only_the_params_check(dvc_project: Path) -> None:
    params = dvc_project / "params.yaml"
    original = params.read_text()
    write_params(dvc_project, {"train.seed": 7, "mlflow.experiment": "other"})
    try:
        result = dvc(dvc_project, "repro", "validate")
    finally:
        params.write_text(original)
    ran = re.findall(r"Running stage '(\w+)'", result.stdout)
    assert ran == ["params"], result.stdout


@pytest.mark.slow
def test_nyu_download_costs_one_copy_beyond_dvc_cache(dvc_project: Path, world: World) -> None:
    """`data.source: nyu` through DVC with the repo's cache config: the file is stored in the
    downloads folder and in DVC's cache, and data/raw links to the cache (measured like `du`)."""
    params = dvc_project / "params.yaml"
    original = params.read_text()
    write_params(dvc_project, _nyu_params(world, "v1"))
    try:
        dvc(dvc_project, "repro", "download")
    finally:
        params.write_text(original)
        dvc(dvc_project, "repro", "download")  # back to the synthetic files (the same bytes)
    size = (world.mirror / "v1" / LABELED_NAME).stat().st_size

    def disk_usage(*folders: str) -> int:
        inodes = {
            (st.st_dev, st.st_ino): st.st_blocks * 512
            for folder in folders
            for p in (dvc_project / folder).rglob("*")
            if p.is_file() and not p.is_symlink()
            for st in [p.stat()]
        }
        return sum(inodes.values())

    beyond_cache = disk_usage("data", ".dvc/cache") - disk_usage(".dvc/cache")
    assert beyond_cache < 1.1 * size, (beyond_cache, size)
