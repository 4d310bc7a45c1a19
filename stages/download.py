"""DVC stage `download`: put the NYU labeled .mat and splits.mat into the raw data folder.

``data.source: synthetic`` generates NYU-format files offline (deterministic from
``data.synthetic``); ``data.source: nyu`` fetches the real files (resumable, MD5-checked) into a
downloads folder that DVC does not manage, then links them into the raw folder. DVC deletes a
stage's outputs before running it, so downloading straight into ``raw_dir`` would throw away a
copy a user placed by hand; partial ``.part`` files survive there too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.download import fetch
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.synthetic import generate
from pipeline.io import link_or_copy
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder for the two raw files (DVC outputs)")
    parser.add_argument("downloads_dir", type=Path, help="where real downloads are kept")
    args = parser.parse_args(argv)
    data = load_params().data
    if data.source == "synthetic":
        syn = data.synthetic
        generate(args.raw_dir, syn.num_images, syn.seed, syn.test_fraction)
        return
    nyu = data.nyu
    for url, md5, name in [
        (nyu.labeled_url, nyu.labeled_md5, LABELED_NAME),
        (nyu.splits_url, nyu.splits_md5, SPLITS_NAME),
    ]:
        fetched = fetch(
            url, args.downloads_dir / name, md5, retries=nyu.retries, backoff=nyu.backoff_s
        )
        link_or_copy(fetched, args.raw_dir / name)


if __name__ == "__main__":
    run_stage(main)
