"""The synthetic NYU twin: the real files' layout, deterministic, and depth visible in RGB."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from scipy import ndimage

from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME, open_labeled, read_splits
from pipeline.data.synthetic import (
    KINECT_BASELINE_FOCAL,
    KINECT_SUBPIXEL,
    NAMES,
    NYU_TEST_FRACTION,
    SCENE_TYPES,
    Frame,
    generate,
    mat73_header,
    render_scene,
    split_indices,
    write_labeled,
)
from pipeline.io import atomic_outputs, md5sum

N, SEED = 8, 11
PER_IMAGE = {  # key -> (shape after N as h5py sees it, dtype, MATLAB_class), as in the real file
    "images": ((3, 640, 480), np.uint8, b"uint8"),
    "depths": ((640, 480), np.float32, b"single"),
    "rawDepths": ((640, 480), np.float32, b"single"),
    "labels": ((640, 480), np.uint16, b"uint16"),
    "instances": ((640, 480), np.uint8, b"uint8"),
}
CELLS = ("names", "scenes", "sceneTypes", "rawDepthFilenames", "rawRgbFilenames")
WALL, FLOOR = NAMES.index("wall") + 1, NAMES.index("floor") + 1
REAL_KEYS = {"#refs#", "#subsystem#", "accelData", "namesToIds", *PER_IMAGE, *CELLS}


@pytest.fixture(scope="module")
def generated(module_tmp: Callable[[str], Path]) -> tuple[Path, Path]:
    return generate(module_tmp("raw"), N, SEED, workers=1)


@pytest.fixture(scope="module")
def labeled(generated: tuple[Path, Path]) -> Iterator[h5py.File]:
    with h5py.File(generated[0], "r") as f:
        yield f


def matlab_string(f: h5py.File, ref: h5py.Reference) -> str:
    chars = f[ref]
    assert chars.dtype == np.uint16 and chars.ndim == 2 and chars.shape[1] == 1
    assert chars.attrs["MATLAB_class"] == b"char" and chars.attrs["MATLAB_int_decode"] == 2
    return "".join(map(chr, chars[:, 0]))


def test_paths_and_names(generated: tuple[Path, Path]) -> None:
    assert [p.name for p in generated] == [LABELED_NAME, SPLITS_NAME]
    assert sorted(p.name for p in generated[0].parent.iterdir()) == sorted(
        [LABELED_NAME, SPLITS_NAME]
    )


def test_matlab_73_header(generated: tuple[Path, Path], labeled: h5py.File) -> None:
    head = generated[0].read_bytes()[:512]
    text = head[:116].decode("ascii")
    assert re.fullmatch(
        r"MATLAB 7\.3 MAT-file, Platform: \w+, Created on: .+ HDF5 schema 1\.00 \. *", text
    )
    assert head[116:124] == b" " * 8  # no subsystem data offset
    assert head[124:126] == (0x0200).to_bytes(2, "little")  # version 2: MATLAB 7.3
    assert head[126:128] == b"IM"  # little-endian indicator
    assert head[128:] == b"\0" * 384 and head == mat73_header()
    assert labeled.userblock_size == 512


def test_keys_shapes_dtypes_and_matlab_classes(labeled: h5py.File) -> None:
    assert set(labeled) == REAL_KEYS
    for key, (tail, dtype, cls) in PER_IMAGE.items():
        ds = labeled[key]
        assert (ds.shape, ds.dtype, ds.attrs["MATLAB_class"]) == ((N, *tail), dtype, cls), key
        assert ds.chunks == (1, *tail) and ds.compression == "gzip", key  # one image per chunk
    accel = labeled["accelData"]
    assert (accel.shape, accel.dtype, accel.attrs["MATLAB_class"]) == (
        (4, N),
        np.float32,
        b"single",
    )
    for key in CELLS:
        assert (
            labeled[key].dtype == h5py.ref_dtype and labeled[key].attrs["MATLAB_class"] == b"cell"
        )
    assert labeled["names"].shape == (1, len(NAMES))
    assert all(labeled[key].shape == (1, N) for key in CELLS[1:])


def test_cells_hold_matlab_strings(labeled: h5py.File) -> None:
    strings = {key: [matlab_string(labeled, r) for r in labeled[key][0]] for key in CELLS}
    assert strings["names"] == list(NAMES)
    assert set(strings["sceneTypes"]) <= set(SCENE_TYPES)
    assert strings["scenes"] == [f"{t}_{i + 1:04d}" for i, t in enumerate(strings["sceneTypes"])]
    files = zip(
        strings["scenes"], strings["rawDepthFilenames"], strings["rawRgbFilenames"], strict=True
    )
    for scene, depth, rgb in files:
        assert re.fullmatch(rf"{scene}/d-\d+\.\d{{6}}-\d+\.pgm", depth)
        assert rgb == depth.replace("/d-", "/r-").replace(".pgm", ".ppm")


def test_names_to_ids_is_a_matlab_object_placeholder(labeled: h5py.File) -> None:
    ds = labeled["namesToIds"]
    assert ds.dtype == np.uint32 and ds.attrs["MATLAB_class"] == b"containers.Map"
    assert ds[0, 0] == 0xDD000000 and ds.attrs["MATLAB_object_decode"] == 3
    mcos = labeled["#subsystem#/MCOS"]
    assert mcos.attrs["MATLAB_class"] == b"FileWrapper__" and mcos.dtype == h5py.ref_dtype


def test_reader_reads_synthetic_file(generated: tuple[Path, Path], labeled: h5py.File) -> None:
    with open_labeled(generated[0]) as data:
        assert len(data) == N
        for i in (0, N - 1):
            rgb, depth = data.image(i)
            np.testing.assert_array_equal(rgb, labeled["images"][i].transpose(2, 1, 0))
            np.testing.assert_array_equal(depth, labeled["depths"][i].T)
    train, test = read_splits(generated[1], num_images=N)
    assert train.size + test.size == N


def test_depths_in_nyu_range(labeled: h5py.File) -> None:
    for i in range(N):
        depth = labeled["depths"][i]
        assert depth.min() >= 0.5 and depth.max() <= 10.0, i
        assert depth.max() - depth.min() > 1.0, i  # a room, not a wall


def test_raw_depths_have_holes_and_match_filled_depths(labeled: h5py.File) -> None:
    for i in range(N):
        depth, raw = labeled["depths"][i].T, labeled["rawDepths"][i].T
        holes = raw == 0
        assert 0.02 < holes.mean() < 0.5, i
        assert holes[:, :8].all() and holes[:, -2:].all() and holes[:2].all() and holes[-2:].all()
        # Elsewhere: the depth, up to rounding disparity bf / z to 1/8 pixel (at most 1/16 off).
        half_step = 1 / (2 * KINECT_SUBPIXEL)
        bound = depth**2 * half_step / (KINECT_BASELINE_FOCAL - depth * half_step)
        err = np.abs(raw - depth)[~holes]
        assert (err <= bound[~holes] + 1e-5).all(), i
        assert err.max() > 0  # it *is* quantised


def test_labels_and_instances(labeled: h5py.File) -> None:
    for i in range(N):
        labels, instances = labeled["labels"][i], labeled["instances"][i]
        present = set(np.unique(labels))
        assert {WALL, FLOOR} <= present <= set(range(1, len(NAMES) + 1))
        assert instances.min() >= 1


def test_splits_mat_like_nyu(generated: tuple[Path, Path]) -> None:
    mat = scipy.io.loadmat(generated[1])
    assert mat["__header__"].startswith(b"MATLAB 5.0 MAT-file")
    train, test = mat["trainNdxs"], mat["testNdxs"]
    for ndxs in (train, test):
        assert ndxs.dtype == np.uint16 and ndxs.ndim == 2 and ndxs.shape[1] == 1
        assert (np.diff(ndxs[:, 0].astype(int)) > 0).all()
    assert test.shape[0] == round(NYU_TEST_FRACTION * N)
    assert sorted([*train[:, 0], *test[:, 0]]) == list(range(1, N + 1))  # 1-based, disjoint, all
    zero_based = read_splits(generated[1], num_images=N)
    expected = split_indices(N, SEED, NYU_TEST_FRACTION)
    for got, want, ndxs in zip(zero_based, expected, (train, test), strict=True):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, ndxs[:, 0].astype(np.int64) - 1)


def test_split_is_seeded() -> None:
    first = split_indices(100, 0, 0.2)
    np.testing.assert_array_equal(first[1], split_indices(100, 0, 0.2)[1])
    assert not np.array_equal(first[1], split_indices(100, 1, 0.2)[1])
    assert first[1].size == 20
    assert [s.size for s in split_indices(2, 0, 0.01)] == [1, 1]  # never an empty side


def test_same_params_same_bytes(generated: tuple[Path, Path], tmp_path: Path) -> None:
    """Two workers instead of one, and a second run: byte-identical files (no timestamps)."""
    again = generate(tmp_path, N, SEED, workers=2)
    assert [md5sum(p) for p in again] == [md5sum(p) for p in generated]


# sha256 of images, depths and rawDepths of `generate(dir, 2, SEED)`: the same on every CPU.
PIXELS_SHA256 = "9adfe5fb6b30c4678b0b495611ab63f02fa2e3372cf39ce9b925874b4ea22a97"
# numpy's SIMD dispatch levels above the x86-64-v2 baseline, lowest first.
DISPATCH_LEVELS = ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")
_PIXEL_DIGEST = """
import hashlib, sys, h5py
from pipeline.data.synthetic import generate
labeled, _ = generate(sys.argv[1], 2, int(sys.argv[2]), workers=1)
digest = hashlib.sha256()
with h5py.File(labeled, "r") as f:
    for key in ("images", "depths", "rawDepths"):
        digest.update(f[key][:].tobytes())
print(digest.hexdigest())
"""


def test_pixels_do_not_depend_on_the_cpu(tmp_path: Path) -> None:
    """numpy picks SIMD loops by instruction set; rendered with every level this CPU has (the
    higher ones switched off through NPY_DISABLE_CPU_FEATURES), the pixels are the recorded ones."""
    from numpy._core._multiarray_umath import __cpu_features__ as features

    levels = [level for level in DISPATCH_LEVELS if features.get(level)] or ["baseline"]
    digests = {}
    for k, level in enumerate(levels):
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(levels[k + 1 :])}
        out = subprocess.run(
            [sys.executable, "-c", _PIXEL_DIGEST, str(tmp_path / level), str(SEED)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests[level] = out.stdout.strip()
    assert digests == dict.fromkeys(digests, PIXELS_SHA256)


def test_image_depends_only_on_seed_and_index(labeled: h5py.File, tmp_path: Path) -> None:
    fewer, _ = generate(tmp_path, 3, SEED, workers=1)
    with h5py.File(fewer, "r") as f:
        for key in PER_IMAGE:
            np.testing.assert_array_equal(f[key][:], labeled[key][:3], err_msg=key)
        np.testing.assert_array_equal(f["accelData"][:], labeled["accelData"][:, :3])
    other_seed = render_scene(np.random.default_rng(np.random.SeedSequence(SEED + 1).spawn(1)[0]))
    assert not np.array_equal(other_seed.rgb, labeled["images"][0].transpose(2, 1, 0))


def test_rgb_shows_the_geometry(generated: tuple[Path, Path], labeled: h5py.File) -> None:
    """Depth can only be learnt from RGB if geometry shows in it. Two cues, checked on the pixels:

    object silhouettes (depth jumps) are RGB edges, and so are corners between two walls, which
    share one paint: shading depends on surface orientation. Measured on 64 images, silhouettes
    have 6-57x (median 17x) the RGB gradient of smooth regions and wall corners 1.6-27x (median
    9x); with orientation-blind shading the corner median drops to ~2 and this test fails.
    Necessary, not sufficient: only training a model shows that depth is learnt.
    """
    jump_ratios, corner_ratios = [], []
    with open_labeled(generated[0]) as data:
        for i in range(N):
            rgb, depth = data.image(i)
            lum = rgb.astype(np.float32).mean(axis=2)
            grad = np.hypot(ndimage.sobel(lum, 0), ndimage.sobel(lum, 1))
            jump = np.zeros(depth.shape, bool)
            jump[:, 1:] |= np.abs(np.diff(depth, axis=1)) > 0.05 * depth[:, 1:]
            jump[1:] |= np.abs(np.diff(depth, axis=0)) > 0.05 * depth[1:]
            bend = np.zeros(depth.shape, np.float32)  # relative second difference along rows
            bend[:, 1:-1] = (
                np.abs(depth[:, :-2] - 2 * depth[:, 1:-1] + depth[:, 2:]) / depth[:, 1:-1]
            )
            smooth = ~ndimage.binary_dilation(jump | (bend > 5e-4), iterations=4)
            walls = ndimage.binary_erosion(labeled["labels"][i].T == WALL, iterations=3)
            corner = walls & (bend > 3e-3)
            jump_ratios.append(np.median(grad[jump]) / np.median(grad[smooth]))
            if corner.sum() >= 30:
                corner_ratios.append(np.median(grad[corner]) / np.median(grad[walls & smooth]))
    assert min(jump_ratios) > 3, jump_ratios
    assert len(corner_ratios) >= N // 2 and np.median(corner_ratios) > 3, corner_ratios


def test_failed_render_leaves_nothing(tmp_path: Path) -> None:
    """Written as generate() writes it (temporary names, published together): no file stays."""

    def frames() -> Iterator[Frame]:
        yield render_scene(np.random.default_rng(0))
        raise RuntimeError("renderer crashed")

    with (
        pytest.raises(RuntimeError, match="renderer crashed"),
        atomic_outputs(tmp_path / LABELED_NAME, tmp_path / SPLITS_NAME) as (labeled, _),
    ):
        write_labeled(labeled, frames(), 3)
    assert list(tmp_path.iterdir()) == []


def test_too_few_frames_is_an_error(tmp_path: Path) -> None:
    one = [render_scene(np.random.default_rng(0))]
    with (
        pytest.raises(ValueError, match="expected 2 frames, got 1"),
        atomic_outputs(tmp_path / LABELED_NAME) as (labeled,),
    ):
        write_labeled(labeled, one, 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_images": 1}, "num_images must be in 2..65535, got 1"),
        ({"num_images": 70_000}, "num_images must be in 2..65535, got 70000"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\), got 1.0"),
        ({"workers": 0}, "workers must be >= 1, got 0"),
    ],
)
def test_generate_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"num_images": 4, "seed": 0, "test_fraction": 0.5, "workers": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        generate(tmp_path, **args)
    assert list(tmp_path.iterdir()) == []
