"""The raw dataset's per-category ``.zip`` archives: download each, extract the training folders.

Each archive is fetched with :func:`pipeline.download.fetch` (resumable, retried, atomic).
The server may keep an MD5 beside an archive (``<name>.zip.md5``); when it answers, the archive
must match it, and the value is kept beside the local copy so that a later, offline run checks
that copy too. Only the members under a training scene's folder are extracted (zip's central
directory lets us skip the rest without reading it): all 38 archives unpacked are ~428 GB.
Each folder is extracted into a temporary sibling and renamed, so a folder that exists is
complete, and a killed run resumes at the next folder.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import zipfile
from collections import defaultdict
from pathlib import Path, PurePosixPath

import requests

from pipeline.data.raw.scenes import folder_scene
from pipeline.download import DownloadError, fetch
from pipeline.io import atomic_write_text

SCENES_DIR = "scenes"
_MD5_SUFFIX = ".md5"
_MD5_RE = re.compile(r"[0-9a-f]{32}")


def archive_dir(downloads_dir: Path, source: str) -> Path:
    """Where the archives and extracted folders of ``data.source`` live (outside DVC's outputs)."""
    return Path(downloads_dir) / ("nyu_raw" if source == "nyu" else "synthetic_raw")


def archive_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}.zip"


def server_md5(url: str, local: Path, retries: int, backoff: float) -> str | None:
    """The MD5 the server keeps beside ``url`` (``url.md5``), None when it has none.

    Kept in ``local`` once read, so that an offline run still checks a local copy. An
    unreachable server also gives None: ``fetch`` then names the URL and where to put the file.
    """
    if local.exists():
        return local.read_text().split()[0].lower()
    for attempt in range(retries + 1):
        try:
            response = requests.get(url + _MD5_SUFFIX, timeout=30.0)
            break
        except (requests.ConnectionError, requests.Timeout):
            if attempt == retries:
                return None
            time.sleep(backoff * 2**attempt)
    words = response.text.split() if response.status_code == 200 else []
    if not words or not _MD5_RE.fullmatch(words[0].lower()):
        return None
    atomic_write_text(local, words[0].lower() + "\n")
    return words[0].lower()


def fetch_archive(base_url: str, name: str, folder: Path, retries: int, backoff: float) -> Path:
    """``folder/<name>.zip``, downloaded unless present; checked against the server's MD5.

    A copy placed by hand without an MD5 beside it is used as it is."""
    url = archive_url(base_url, name)
    dest = Path(folder) / f"{name}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    local_md5 = _md5_path(dest)
    have_copy = dest.exists() and not local_md5.exists()
    md5 = None if have_copy else server_md5(url, local_md5, retries, backoff)
    return fetch(url, dest, md5, retries=retries, backoff=backoff)


def _md5_path(archive: Path) -> Path:
    return archive.with_name(archive.name + _MD5_SUFFIX)


def extract_training_folders(archive: Path, train_scenes: set[str], scenes_dir: Path) -> list[str]:
    """Extract the folders of ``archive`` whose scene is in ``train_scenes``; return their names.

    Members are ``<folder>/<file>`` (any leading directories are ignored); a folder already in
    ``scenes_dir`` is taken as done.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(
            f"{archive}: not a readable zip archive ({exc}); delete it and run again"
        ) from exc
    with zf:
        members: dict[str, list[zipfile.ZipInfo]] = defaultdict(list)
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if not info.is_dir() and len(parts) >= 2 and folder_scene(parts[-2]) in train_scenes:
                members[parts[-2]].append(info)
        for folder, infos in sorted(members.items()):
            _extract_folder(zf, folder, infos, Path(scenes_dir))
    return sorted(members)


def _extract_folder(
    zf: zipfile.ZipFile, folder: str, infos: list[zipfile.ZipInfo], scenes_dir: Path
) -> None:
    final = scenes_dir / folder
    if final.is_dir():
        return
    tmp = scenes_dir / f".{folder}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left
    tmp.mkdir(parents=True)
    try:
        for info in infos:
            with zf.open(info) as src, open(tmp / PurePosixPath(info.filename).name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
