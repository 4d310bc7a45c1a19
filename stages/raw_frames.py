"""DVC stage `raw_frames`: the raw Kinect frames that train, when ``data.train_source: raw``.

Downloads the archives of ``data.raw.archives`` (``data.source: nyu``; the synthetic twin's
come from the `download` stage) into the downloads folder, outside DVC's outputs, extracts only
the training scenes' folders there, and writes the sampled frame list (a DVC output). With
``train_source: labeled`` it writes the header alone, so the default pipeline does no raw work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME, NYUFormatError, open_labeled
from pipeline.data.raw.archives import (
    SCENES_DIR,
    archive_dir,
    extract_training_folders,
    fetch_archive,
)
from pipeline.data.raw.frames import sample_frames, write_frames
from pipeline.data.raw.scenes import split_scenes
from pipeline.io import remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder with the labeled file and splits.mat")
    parser.add_argument("downloads_dir", type=Path, help="where archives and scenes are kept")
    parser.add_argument("frames_csv", type=Path, help="the sampled frame list (DVC output)")
    args = parser.parse_args(argv)
    remove_stale_temps(args.frames_csv)
    data = load_params().data
    if data.train_source == "labeled":
        write_frames(args.frames_csv, [])
        return
    labeled, splits = args.raw_dir / LABELED_NAME, args.raw_dir / SPLITS_NAME
    train_scenes, _ = split_scenes(labeled, splits)
    folder = archive_dir(args.downloads_dir, data.source)
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
    with open_labeled(labeled) as f:
        first_index = len(f)
    frames = sample_frames(
        folder / SCENES_DIR, folders, data.raw.step, data.raw.max_frames, first_index
    )
    write_frames(args.frames_csv, frames)
    print(f"{len(frames)} raw frames from {len(folders)} training scene folders")


if __name__ == "__main__":
    run_stage(main)
