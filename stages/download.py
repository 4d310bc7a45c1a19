"""DVC stage `download`: put the NYU labeled .mat and splits.mat into the raw data folder.

``data.source: synthetic`` generates NYU-format files offline (deterministic from
``data.synthetic``; with ``data.train_source: raw`` the raw twin of ``data.raw.twin``, whose
archives go to the downloads folder for the `raw_frames` stage); ``data.source: nyu`` fetches the
real files (resumable, MD5-checked) into a downloads folder that DVC does not manage, then links
them into the raw folder. DVC deletes a stage's outputs before running it, so downloading straight
into ``raw_dir`` would throw away a copy a user placed by hand; partial ``.part`` files survive
there too. With DVC's link cache types (``.dvc/config``) the raw files cost no space beyond DVC's
cache and the downloads folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.download import fetch
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.raw.archives import archive_dir
from pipeline.data.synthetic import generate
from pipeline.data.synthetic.raw_twin import generate_raw_twin
from pipeline.io import link_or_copy_together, remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder for the two raw files (DVC outputs)")
    parser.add_argument("downloads_dir", type=Path, help="where real downloads are kept")
    args = parser.parse_args(argv)
    outputs = [args.raw_dir / LABELED_NAME, args.raw_dir / SPLITS_NAME]
    remove_stale_temps(*outputs)
    data = load_params().data
    if data.source == "synthetic" and data.train_source == "raw":
        syn, folder = data.synthetic, archive_dir(args.downloads_dir, data.source)
        generate_raw_twin(args.raw_dir, folder, data.raw.twin, syn.seed, syn.test_fraction)
        return
    if data.source == "synthetic":
        syn = data.synthetic
        generate(args.raw_dir, syn.num_images, syn.seed, syn.test_fraction)
        return
    nyu = data.nyu
    fetched = [
        fetch(url, args.downloads_dir / name, md5, retries=nyu.retries, backoff=nyu.backoff_s)
        for url, md5, name in [
            (nyu.labeled_url, nyu.labeled_md5, LABELED_NAME),
            (nyu.splits_url, nyu.splits_md5, SPLITS_NAME),
        ]
    ]
    link_or_copy_together(*zip(fetched, outputs, strict=True))


if __name__ == "__main__":
    run_stage(main)
