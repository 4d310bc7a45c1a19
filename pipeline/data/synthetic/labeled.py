"""Write the synthetic NYU Depth v2 twin: ``nyu_depth_v2_labeled.mat`` (v7.3), ``splits.mat`` (v5).

The files copy the real ones key for key — HDF5 layout, MATLAB classes, the 512-byte MATLAB header,
uint16 1-based splits — so the reader (``pipeline.data.nyu``) and every later stage run unchanged
on either. Output is a pure function of ``(num_images, seed, test_fraction)``: image i depends only
on ``(seed, i)``, and two runs give byte-identical files (no timestamps anywhere).
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from multiprocessing.pool import Pool
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import scipy.io
from tqdm import tqdm

from pipeline.data.nyu import HEIGHT, LABELED_NAME, MAT73_USERBLOCK, SPLITS_NAME, WIDTH
from pipeline.data.synthetic.render import Frame, render_scene
from pipeline.data.synthetic.scene import NAMES
from pipeline.io import NewH5File, atomic_outputs

NYU_TEST_FRACTION = 654 / 1449  # the official split: 795 train, 654 test images
MAX_IMAGES = np.iinfo(np.uint16).max  # splits.mat stores uint16 indices
# A fixed creation date keeps the header, and so the file, a function of the params alone.
_CREATED = "Sat Jan  1 00:00:00 2000"
_SPLIT_STREAM = 1  # the split draws from SeedSequence([seed, 1]), apart from the per-image children
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
_GZIP_LEVEL = 1  # one image per chunk; level 1 is ~3x faster than 4 for a few % more bytes


class RawNames(NamedTuple):
    """Per labeled image: its scene and the raw frames it was made from ('<folder>/<file>')."""

    scenes: Sequence[str]
    depth_files: Sequence[str]
    rgb_files: Sequence[str]


def generate(
    raw_dir: str | os.PathLike[str],
    num_images: int,
    seed: int,
    test_fraction: float = NYU_TEST_FRACTION,
    workers: int | None = None,
) -> tuple[Path, Path]:
    """Render ``num_images`` rooms into ``raw_dir/nyu_depth_v2_labeled.mat`` and ``splits.mat``.

    Both files are published together (``atomic_outputs``): a failure or a kill leaves the
    previous pair, never a new labeled file beside an old split. Returns their paths.
    ``workers`` render processes (default: all CPUs) stream frames in index order into the HDF5
    file, so memory stays flat.
    """
    if not 2 <= num_images <= MAX_IMAGES:
        raise ValueError(f"num_images must be in 2..{MAX_IMAGES}, got {num_images}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    raw_dir = Path(raw_dir)
    labeled, splits = raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME
    with atomic_outputs(labeled, splits) as (labeled_tmp, splits_tmp):
        with rendered_frames(num_images, seed, workers) as frames:
            write_labeled(labeled_tmp, frames, num_images)
        write_splits(splits_tmp, *split_indices(num_images, seed, test_fraction))
    return labeled, splits


def split_indices(
    num_images: int, seed: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted 0-based (train, test) indices: a seeded permutation, at least one image in each."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM]))
    n_test = min(max(round(test_fraction * num_images), 1), num_images - 1)
    order = rng.permutation(num_images)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


@contextmanager
def rendered_frames(
    num_images: int, seed: int, workers: int | None = None
) -> Iterator[Iterator[Frame]]:
    """Yield an iterator of frames 0..num_images-1 in order; image i uses the i-th spawned seed.

    The worker processes are forked on entry, before the caller opens the HDF5 file or starts
    tqdm's thread, so children inherit neither; forking also needs no ``__main__`` guard in the
    calling script, unlike spawn. At most ``2 * workers`` frames are in flight at a time.
    """
    seeds = np.random.SeedSequence(seed).spawn(num_images)
    workers = min(workers or os.cpu_count() or 1, num_images)
    if workers == 1:
        yield map(_render, seeds)
        return
    with multiprocessing.get_context(_START_METHOD).Pool(workers) as pool:
        yield _in_order(pool, seeds, 2 * workers)


def _in_order(pool: Pool, seeds: list[np.random.SeedSequence], depth: int) -> Iterator[Frame]:
    todo = iter(seeds)
    pending = deque(pool.apply_async(_render, (s,)) for s in islice(todo, depth))
    while pending:
        frame = pending.popleft().get()
        pending.extend(pool.apply_async(_render, (s,)) for s in islice(todo, 1))
        yield frame


def _render(seed: np.random.SeedSequence) -> Frame:
    return render_scene(np.random.default_rng(seed))


def mat73_header(created: str = _CREATED) -> bytes:
    """The 512-byte MATLAB 7.3 user block: 116 bytes of text, subsystem offset, version, 'IM'."""
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created} HDF5 schema 1.00 ."
    head = text.encode("ascii").ljust(116, b" ") + b" " * 8 + (0x0200).to_bytes(2, "little") + b"IM"
    return head.ljust(MAT73_USERBLOCK, b"\0")


def write_labeled(
    path: str | os.PathLike[str],
    frames: Iterable[Frame],
    num_images: int,
    raw_names: RawNames | None = None,
) -> None:
    """Stream ``num_images`` frames into a NYU-layout MATLAB 7.3 file at ``path``.

    Arrays are stored as MATLAB writes them, column-major: a 480x640xN MATLAB array is an
    (N, 640, 480) HDF5 dataset. Big datasets hold one image per chunk (byte-shuffled, gzip),
    so a reader decompresses exactly one chunk per image. ``path`` is written in place: give it
    a temporary path (``pipeline.io.atomic_outputs``), as ``generate`` does. ``raw_names``
    (scenes, raw depth and raw RGB file names) point the frames into a raw twin; without it
    every image is its own scene with made-up file names.
    """
    with NewH5File(path, userblock_size=MAT73_USERBLOCK) as f:
        per_image = {
            "images": ((3, WIDTH, HEIGHT), np.uint8, "uint8"),
            "depths": ((WIDTH, HEIGHT), np.float32, "single"),
            "rawDepths": ((WIDTH, HEIGHT), np.float32, "single"),
            "labels": ((WIDTH, HEIGHT), np.uint16, "uint16"),
            "instances": ((WIDTH, HEIGHT), np.uint8, "uint8"),
        }
        ds = {
            key: _dataset(f, key, (num_images, *tail), dtype, cls, chunks=(1, *tail))
            for key, (tail, dtype, cls) in per_image.items()
        }
        scene_types, accel = [], np.empty((4, num_images), np.float32)
        frames = islice(frames, num_images)
        for i, frame in enumerate(tqdm(frames, total=num_images, desc="render", unit="img")):
            ds["images"][i] = frame.rgb.transpose(2, 1, 0)
            ds["depths"][i] = frame.depth.T
            ds["rawDepths"][i] = frame.raw_depth.T
            ds["labels"][i] = frame.labels.T
            ds["instances"][i] = frame.instances.T
            scene_types.append(frame.scene_type)
            accel[:, i] = frame.accel
            f.raise_write_error()  # a full disk stops the render now, not at the end
        if len(scene_types) != num_images:
            raise ValueError(f"expected {num_images} frames, got {len(scene_types)}")
        _write_metadata(f, scene_types, accel, raw_names)
    with open(path, "r+b") as raw:
        raw.write(mat73_header())


def _dataset(
    f: h5py.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype | type,
    matlab_class: str,
    chunks: tuple[int, ...] | None = None,
    data: np.ndarray | None = None,
) -> h5py.Dataset:
    """A dataset with MATLAB's class attribute and no timestamps (files must be reproducible)."""
    ds = f.create_dataset(
        name,
        shape,
        dtype,
        data=data,
        chunks=chunks,
        compression="gzip" if chunks else None,
        compression_opts=_GZIP_LEVEL if chunks else None,
        shuffle=bool(chunks),
        track_times=False,
    )
    ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    return ds


def _write_metadata(
    f: h5py.File, scene_types: Sequence[str], accel: np.ndarray, raw_names: RawNames | None
) -> None:
    """The small keys: cell arrays of strings, accelerometer data and the namesToIds map."""
    if raw_names is None:
        scenes = [f"{kind}_{i + 1:04d}" for i, kind in enumerate(scene_types)]
        # Kinect-style names: '<scene>/d-<unix time>-<frame counter>.pgm' (r-... .ppm for RGB).
        stamps = [
            f"{1294000000 + 97 * i}.{(i * 7919) % 1000000:06d}-{i * 104729}"
            for i in range(len(scenes))
        ]
        depth_files = [f"{s}/d-{t}.pgm" for s, t in zip(scenes, stamps, strict=True)]
        rgb_files = [f"{s}/r-{t}.ppm" for s, t in zip(scenes, stamps, strict=True)]
        raw_names = RawNames(scenes, depth_files, rgb_files)
    _dataset(f, "accelData", accel.shape, np.float32, "single", data=accel)
    _cellstr(f, "names", NAMES)
    _cellstr(f, "scenes", raw_names.scenes)
    _cellstr(f, "sceneTypes", scene_types)
    _cellstr(f, "rawDepthFilenames", raw_names.depth_files)
    _cellstr(f, "rawRgbFilenames", raw_names.rgb_files)
    _names_to_ids(f)


def _cellstr(f: h5py.File, name: str, strings: Sequence[str]) -> None:
    """A MATLAB Kx1 cell of char row vectors: object references into ``#refs#``.

    Each string is a uint16 (len, 1) dataset with MATLAB_class 'char' and MATLAB_int_decode 2,
    named 'a', 'b', ..., 'z', 'ba', ... in creation order; readers follow the references.
    """
    refs = f.require_group("#refs#")
    cell = _dataset(f, name, (1, len(strings)), h5py.ref_dtype, "cell")
    for k, text in enumerate(strings):
        chars = np.frombuffer(text.encode("utf-16-le"), np.uint16).reshape(-1, 1)
        ds = _dataset(refs, _ref_name(len(refs)), chars.shape, np.uint16, "char", data=chars)
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
        cell[0, k] = ds.ref


def _ref_name(k: int) -> str:
    digits = ""
    while True:
        k, rem = divmod(k, 26)
        digits = chr(ord("a") + rem) + digits
        if k == 0:
            return digits


def _names_to_ids(f: h5py.File) -> None:
    """Placeholder for the real file's ``namesToIds`` containers.Map; nothing here reads it.

    MATLAB stores objects as a uint32 reference (0xDD000000, 2, 1, 1, object id, class id) into
    its private ``#subsystem#/MCOS`` blob. We write that reference and a ``#subsystem#`` group of
    the same kinds, but the MCOS content is a stand-in: MATLAB cannot rebuild the map from it.
    The same mapping is implied by ``names`` (label k is ``names[k - 1]``).
    """
    header = np.array([[0xDD000000, 2, 1, 1, 1, 1]], np.uint32)
    ds = _dataset(f, "namesToIds", header.shape, np.uint32, "containers.Map", data=header)
    ds.attrs["MATLAB_object_decode"] = np.int32(3)
    refs = f.require_group("#refs#")
    blob = _dataset(
        refs, _ref_name(len(refs)), (1, 1), np.uint8, "uint8", data=np.zeros((1, 1), np.uint8)
    )
    mcos = _dataset(f.create_group("#subsystem#"), "MCOS", (1, 1), h5py.ref_dtype, "FileWrapper__")
    mcos[0, 0] = blob.ref


def write_splits(path: str | os.PathLike[str], train_idx: np.ndarray, test_idx: np.ndarray) -> None:
    """Write 0-based indices as NYU's splits.mat: MATLAB v5, uint16 1-based column vectors.

    ``path`` is written in place, like ``write_labeled``'s."""
    buf = io.BytesIO()
    mat = {
        "trainNdxs": (np.asarray(train_idx) + 1).astype(np.uint16).reshape(-1, 1),
        "testNdxs": (np.asarray(test_idx) + 1).astype(np.uint16).reshape(-1, 1),
    }
    scipy.io.savemat(buf, mat, format="5", do_compression=True)
    data = bytearray(buf.getvalue())
    # scipy stamps the current time and OS into the 116-byte text; pin it for reproducibility.
    text = f"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: {_CREATED}"
    data[:116] = text.encode("ascii").ljust(116, b" ")
    Path(path).write_bytes(bytes(data))
