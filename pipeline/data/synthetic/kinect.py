"""The Kinect's raw depth of a rendered view: quantised disparity, and holes where no return
came back (grazing and dark surfaces, dropouts, blobs, the projector's shadow, the borders)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pipeline.data.nyu import HEIGHT, WIDTH
from pipeline.data.synthetic.numeric import _F32

KINECT_BASELINE_FOCAL = 0.075 * 580.0  # metre-pixels: disparity = this / depth
KINECT_SUBPIXEL = 8  # the Kinect reports disparity in 1/8 pixel steps


def _kinect_raw_depth(
    rng: np.random.Generator, depth: np.ndarray, cos_view: np.ndarray, radiance: np.ndarray
) -> np.ndarray:
    """Depth as a Kinect would report it: quantised disparity and zero where no return came back."""
    disparity = np.round(KINECT_BASELINE_FOCAL / depth * KINECT_SUBPIXEL) / KINECT_SUBPIXEL
    raw = (KINECT_BASELINE_FOCAL / disparity).astype(_F32)
    dark = (radiance[0] + radiance[1] + radiance[2]).reshape(depth.shape) < 0.06
    holes = (cos_view < 0.1) | (dark & (rng.random(depth.shape) < 0.8))
    holes |= rng.random(depth.shape) < 0.003
    holes |= _blobs(rng, depth.shape) > 0.93
    # Projector shadow: a nearer surface to the left whose disparity exceeds this pixel's by more
    # than their distance in pixels hides it from the projector (one running max along rows).
    reach = disparity + np.arange(WIDTH)
    hidden = np.maximum.accumulate(reach, axis=1)[:, :-1] > reach[:, 1:] + 0.5
    holes[:, 1:] |= hidden
    left, right, top, bottom = rng.integers([8, 2, 2, 2], [20, 8, 8, 8])
    holes[:, :left] = holes[:, WIDTH - right :] = True
    holes[:top] = holes[HEIGHT - bottom :] = True
    raw[holes] = 0.0
    return raw


def _blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth random field in [0, 1): a coarse 13x17 grid, bilinearly upsampled."""
    coarse = rng.random((13, 17), dtype=_F32)
    return ndimage.zoom(coarse, (shape[0] / 13, shape[1] / 17), order=1)
