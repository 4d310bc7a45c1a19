"""The synthetic raw twin, and the raw layer on it: archives, scenes, sampling, train.h5."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from e2e import closed_url
from mirror import serving
from scipy import ndimage

from pipeline.config import PreprocessConfig, RawTwinConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME, read_splits
from pipeline.data.raw import read_pgm, read_ppm
from pipeline.data.raw.archives import extract_training_folders, fetch_archive
from pipeline.data.raw.camera import DEPTH_PARAM1
from pipeline.data.raw.frames import read_frames, sample_frames, write_frames
from pipeline.data.raw.scenes import folder_scene, read_cellstr, split_scenes
from pipeline.data.raw.selfcheck import selfcheck
from pipeline.data.raw.train_split import preprocess_raw
from pipeline.data.synthetic.raw_twin import generate_raw_twin
from pipeline.download import ChecksumError, DownloadError
from pipeline.io import md5sum

TWIN = RawTwinConfig(scenes=3, frames=5, labeled_per_scene=2)
SIZE = PreprocessConfig(resize_hw=(34, 44), crop_hw=(32, 40))


@pytest.fixture(scope="module")
def twin(module_tmp: Callable[[str], Path]) -> Path:
    """raw/ (labeled + splits) and archives/ (one zip per category) of a 3-scene twin."""
    root = module_tmp("twin")
    generate_raw_twin(root / "raw", root / "archives", TWIN, seed=0, test_fraction=0.34)
    return root


@pytest.fixture(scope="module")
def extracted(twin: Path, module_tmp: Callable[[str], Path]) -> tuple[Path, list[str]]:
    scenes_dir = module_tmp("scenes")
    train, _ = split_scenes(twin / "raw" / LABELED_NAME, twin / "raw" / SPLITS_NAME)
    folders = []
    for archive in sorted((twin / "archives").glob("*.zip")):
        folders += extract_training_folders(archive, train, scenes_dir)
    return scenes_dir, folders


def _members(twin: Path) -> set[str]:
    names = set()
    for archive in (twin / "archives").glob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            names.update(zf.namelist())
    return names


def test_labeled_file_points_into_the_archives(twin: Path) -> None:
    labeled = twin / "raw" / LABELED_NAME
    members = _members(twin)
    depth = read_cellstr(labeled, "rawDepthFilenames")
    rgb = read_cellstr(labeled, "rawRgbFilenames")
    scenes = read_cellstr(labeled, "scenes")
    assert len(depth) == len(rgb) == len(scenes) == TWIN.scenes * TWIN.labeled_per_scene
    assert set(depth) <= members and set(rgb) <= members
    assert all(folder_scene(name.split("/")[0]) == s for name, s in zip(depth, scenes, strict=True))
    # every folder has TWIN.frames depth and RGB frames and half as many accelerometer frames
    kinds = [name.split("/")[1][0] for name in members]
    assert kinds.count("d") == kinds.count("r") == TWIN.scenes * TWIN.frames
    assert kinds.count("a") == TWIN.scenes * ((TWIN.frames + 1) // 2)


def test_split_is_by_scene_and_test_scenes_are_never_extracted(
    twin: Path, extracted: tuple[Path, list[str]]
) -> None:
    labeled, splits = twin / "raw" / LABELED_NAME, twin / "raw" / SPLITS_NAME
    train, test = split_scenes(labeled, splits)
    assert train and test and not train & test
    scenes = read_cellstr(labeled, "scenes")
    train_idx, test_idx = read_splits(splits)
    assert {scenes[i] for i in test_idx} == test
    assert {scenes[i] for i in train_idx} == train
    _, folders = extracted
    assert {folder_scene(f) for f in folders} == train


def _edges(depth: np.ndarray) -> np.ndarray:
    jump = np.zeros(depth.shape, bool)
    jump[:, 1:] |= np.abs(np.diff(depth, axis=1)) > 0.05
    jump[1:] |= np.abs(np.diff(depth, axis=0)) > 0.05
    return ndimage.binary_dilation(jump, iterations=5)


def test_projected_depth_matches_the_depth_seen_from_the_rgb_camera(twin: Path) -> None:
    """rawDepths (the port's projection of the recorded frames) against depths (rendered from
    the RGB camera): within 1 cm plus half a disparity step (z^2 / 351.3 / 2: the Kinect's own
    quantisation, 2.3 cm at 4 m) on >= 99% of the pixels both have, away from occlusion edges."""
    with h5py.File(twin / "raw" / LABELED_NAME, "r") as h5:
        for i in range(h5["depths"].shape[0]):
            truth, projected = h5["depths"][i].T, h5["rawDepths"][i].T
            both = (projected > 0) & ~_edges(truth)
            assert both.mean() > 0.6
            bound = 0.01 + truth[both] ** 2 / DEPTH_PARAM1 / 2
            assert (np.abs(projected[both] - truth[both]) <= bound).mean() >= 0.99


def test_sampling_takes_every_step_th_synced_frame_and_caps_evenly(
    extracted: tuple[Path, list[str]],
) -> None:
    scenes_dir, folders = extracted
    every = sample_frames(scenes_dir, folders, 1, None, first_index=100)
    assert len(every) == len(folders) * TWIN.frames
    assert [f.index for f in every] == list(range(100, 100 + len(every)))
    second = sample_frames(scenes_dir, folders, 2, None, first_index=100)
    assert [(f.folder, f.depth) for f in second] == [
        (f.folder, f.depth) for f in every if (f.index - 100) % TWIN.frames % 2 == 0
    ]
    assert len(every) == 10
    capped = sample_frames(scenes_dir, folders, 1, 4, first_index=0)
    assert [(f.folder, f.depth) for f in capped] == [
        (every[i].folder, every[i].depth) for i in (0, 3, 6, 9)
    ]


def test_frame_list_round_trips(tmp_path: Path, extracted: tuple[Path, list[str]]) -> None:
    frames = sample_frames(*extracted, 2, None, first_index=6)
    write_frames(tmp_path / "f.csv", frames)
    assert read_frames(tmp_path / "f.csv") == frames
    with open(tmp_path / "f.csv") as f:
        assert next(csv.reader(f)) == ["index", "folder", "depth", "rgb"]


def test_raw_train_h5_has_the_labeled_layout_plus_file_names(
    tmp_path: Path, twin: Path, extracted: tuple[Path, list[str]]
) -> None:
    scenes_dir, folders = extracted
    frames = sample_frames(scenes_dir, folders, 2, None, first_index=6)
    write_frames(tmp_path / "f.csv", frames)
    raw = twin / "raw"
    train, test = preprocess_raw(
        raw / LABELED_NAME, raw / SPLITS_NAME, tmp_path / "f.csv", scenes_dir, tmp_path / "p", SIZE
    )
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["test.h5", "train.h5"]
    with h5py.File(train, "r") as h5:
        assert h5["rgb"].dtype == np.uint8 and h5["rgb"].shape == (len(frames), 34, 44, 3)
        assert h5["depth"].dtype == np.float32 and h5["depth"].shape == (len(frames), 34, 44)
        assert h5["rgb"].chunks == (1, 34, 44, 3) and h5["depth"].chunks == (1, 34, 44)
        assert h5["index"][:].tolist() == [f.index for f in frames]
        assert h5["raw_depth_file"][0].decode() == f"{frames[0].folder}/{frames[0].depth}"
        assert h5.attrs["source"] == "raw"
        assert 0.3 < (h5["depth"][:] > 0).mean() < 1.0  # raw depth: holes stay 0
    with h5py.File(test, "r") as h5:
        _, test_idx = read_splits(raw / SPLITS_NAME)
        assert h5["index"][:].tolist() == test_idx.tolist()
    again = preprocess_raw(
        raw / LABELED_NAME, raw / SPLITS_NAME, tmp_path / "f.csv", scenes_dir, tmp_path / "q", SIZE
    )
    assert md5sum(again[0]) == md5sum(train)  # byte-identical reruns (DVC hashes it)


def test_selfcheck_agrees_with_the_labeled_raw_depths(
    twin: Path, extracted: tuple[Path, list[str]]
) -> None:
    result = selfcheck(twin / "raw" / LABELED_NAME, extracted[0])
    train_images = len(read_splits(twin / "raw" / SPLITS_NAME)[0])
    assert result["frames"] == train_images  # the training scenes' labeled frames
    assert result["within_1cm_min"] == 1.0


def test_selfcheck_notices_a_flipped_byte_order(
    tmp_path: Path, twin: Path, extracted: tuple[Path, list[str]]
) -> None:
    """The metric can fail: frames written big-endian project to something else entirely."""
    scenes_dir, folders = extracted
    copy = tmp_path / "scenes"
    folder = copy / folders[0]
    folder.mkdir(parents=True)
    for path in (scenes_dir / folders[0]).iterdir():
        data = path.read_bytes()
        if path.name.startswith("d-"):
            header_end = len(data) - 480 * 640 * 2
            data = data[:header_end] + read_pgm(path).astype(">u2").tobytes()
        (folder / path.name).write_bytes(data)
    result = selfcheck(twin / "raw" / LABELED_NAME, copy)
    assert result["frames"] == TWIN.labeled_per_scene
    assert result["within_1cm_mean"] < 0.5


def _serve_dir(twin: Path, tmp_path: Path, with_md5: bool) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    for archive in (twin / "archives").glob("*.zip"):
        (served / archive.name).write_bytes(archive.read_bytes())
        if with_md5:
            (served / f"{archive.name}.md5").write_text(f"{md5sum(archive)}  {archive.name}\n")
    return served


def test_archive_download_resumes_after_a_cut_and_checks_the_servers_md5(
    tmp_path: Path, twin: Path
) -> None:
    served = _serve_dir(twin, tmp_path, with_md5=True)
    name = sorted(served.glob("*.zip"))[0].stem
    with serving(served, cut=".zip") as server:
        got = fetch_archive(server.url, name, tmp_path / "dl", retries=2, backoff=0.01)
    assert md5sum(got) == md5sum(served / f"{name}.zip")
    assert server.requests == [f"{name}.zip.md5", f"{name}.zip", f"{name}.zip"]  # cut, resumed
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [f"{name}.zip", f"{name}.zip.md5"]


def test_archive_with_a_wrong_md5_on_the_server_is_refused(tmp_path: Path, twin: Path) -> None:
    served = _serve_dir(twin, tmp_path, with_md5=False)
    name = sorted(served.glob("*.zip"))[0].stem
    (served / f"{name}.zip.md5").write_text("0" * 32 + "\n")
    with serving(served) as server, pytest.raises(ChecksumError):
        fetch_archive(server.url, name, tmp_path / "dl", retries=2, backoff=0.01)
    assert not (tmp_path / "dl" / f"{name}.zip").exists()


def test_offline_names_the_url_and_the_place_then_uses_a_copy_put_there(
    tmp_path: Path, twin: Path
) -> None:
    base = closed_url()
    archive = sorted((twin / "archives").glob("*.zip"))[0]
    dest = tmp_path / "dl" / archive.name
    with pytest.raises(DownloadError) as caught:
        fetch_archive(base, archive.stem, tmp_path / "dl", retries=1, backoff=0.01)
    assert f"{base}/{archive.name}" in str(caught.value) and str(dest) in str(caught.value)
    dest.write_bytes(archive.read_bytes())  # placed by hand
    assert fetch_archive(base, archive.stem, tmp_path / "dl", retries=1, backoff=0.01) == dest


def test_a_half_extracted_folder_is_redone(tmp_path: Path, twin: Path) -> None:
    train, _ = split_scenes(twin / "raw" / LABELED_NAME, twin / "raw" / SPLITS_NAME)
    archive = next(
        a
        for a in sorted((twin / "archives").glob("*.zip"))
        if extract_training_folders(a, train, tmp_path / "probe")
    )
    folder = extract_training_folders(archive, train, tmp_path / "probe")[0]
    leftover = tmp_path / "scenes" / f".{folder}.tmp"
    leftover.mkdir(parents=True)
    (leftover / "d-1.pgm").write_bytes(b"half")
    assert extract_training_folders(archive, train, tmp_path / "scenes") == [folder]
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == [folder]
    assert read_ppm(next((tmp_path / "scenes" / folder).glob("r-*.ppm"))).shape == (480, 640, 3)
