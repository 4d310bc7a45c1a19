"""Where the raw NYU-format files come from: what ``data.source`` (synthetic or nyu) switches.

``data.source: synthetic`` generates NYU-format files offline (deterministic from
``data.synthetic``; with ``train_source: raw`` the raw twin of ``data.raw.twin``, whose archives
go to the downloads folder); ``nyu`` fetches the real files (resumable, MD5-checked) into a
downloads folder that DVC does not manage, then links them into the raw folder. DVC deletes a
stage's outputs before running it, so downloading straight into the raw folder would throw away
a copy a user placed by hand; partial ``.part`` files survive there too.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import DataConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.raw.archives import archive_dir
from pipeline.data.synthetic import generate
from pipeline.data.synthetic.raw_twin import generate_raw_twin
from pipeline.download import fetch
from pipeline.io import link_or_copy_together


def obtain_raw_files(data: DataConfig, raw_dir: Path, downloads_dir: Path) -> None:
    """The labeled .mat and splits.mat in ``raw_dir``: generated, or downloaded and linked."""
    syn = data.synthetic
    if data.source == "synthetic" and data.train_source == "raw":
        folder = archive_dir(downloads_dir, data.source)
        generate_raw_twin(raw_dir, folder, data.raw.twin, syn.seed, syn.test_fraction)
        return
    if data.source == "synthetic":
        generate(raw_dir, syn.num_images, syn.seed, syn.test_fraction)
        return
    nyu = data.nyu
    fetched = [
        fetch(url, downloads_dir / name, md5, retries=nyu.retries, backoff=nyu.backoff_s)
        for url, md5, name in [
            (nyu.labeled_url, nyu.labeled_md5, LABELED_NAME),
            (nyu.splits_url, nyu.splits_md5, SPLITS_NAME),
        ]
    ]
    outputs = [raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME]
    link_or_copy_together(*zip(fetched, outputs, strict=True))
