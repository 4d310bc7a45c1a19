"""The raw frames a training uses (``data.train_source: raw``): the training scenes' folders
taken from the archives of ``data.raw.archives``, then every ``data.raw.step``-th frame.

With ``data.source: nyu`` the archives are downloaded into the downloads folder, outside DVC's
outputs; the synthetic twin's come from the `download` stage and hold only some categories.
With ``train_source: labeled`` there are none, so the default pipeline does no raw work.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import DataConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME, NYUFormatError, open_labeled
from pipeline.data.raw.archives import (
    SCENES_DIR,
    archive_dir,
    extract_training_folders,
    fetch_archive,
)
from pipeline.data.raw.frames import RawFrame, sample_frames
from pipeline.data.raw.scenes import split_scenes


def collect_frames(data: DataConfig, raw_dir: Path, downloads_dir: Path) -> list[RawFrame]:
    """The sampled raw training frames; ``raw_dir`` holds the labeled file and splits.mat
    (they name the training scenes and the first free image index)."""
    if data.train_source == "labeled":
        return []
    labeled = raw_dir / LABELED_NAME
    train_scenes, _ = split_scenes(labeled, raw_dir / SPLITS_NAME)
    folder = archive_dir(downloads_dir, data.source)
    folders = _training_folders(data, folder, train_scenes)
    with open_labeled(labeled) as f:
        first_index = len(f)
    frames = sample_frames(
        folder / SCENES_DIR, folders, data.raw.step, data.raw.max_frames, first_index
    )
    print(f"{len(frames)} raw frames from {len(folders)} training scene folders")
    return frames


def _training_folders(data: DataConfig, folder: Path, train_scenes: set[str]) -> set[str]:
    """Extract the training scenes' folders of every archive into ``folder``/scenes."""
    folders: set[str] = set()
    for name in data.raw.archives:
        if data.source == "nyu":
            archive = fetch_archive(
                data.raw.base_url, name, folder, data.nyu.retries, data.nyu.backoff_s
            )
        else:  # the twin holds only some categories
            archive = folder / f"{name}.zip"
            if not archive.exists():
                continue
        folders.update(extract_training_folders(archive, train_scenes, folder / SCENES_DIR))
    if not folders:
        raise NYUFormatError(
            f"{folder}: none of the {len(data.raw.archives)} archives of data.raw.archives holds "
            "a training scene's folder (a synthetic twin's come from `dvc repro -f download`)"
        )
    return folders
