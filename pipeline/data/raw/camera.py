"""The Kinect calibration of NYU Depth v2, as the toolbox's ``camera_params.m`` defines it.

The values are the toolbox's (calibrated with RGBDemo). Two of its choices are easy to get wrong
and change every projected pixel, so they are kept exactly:

- the rotation is built as ``R = -[r1 .. r9]; R = reshape(R, [3 3]); R = inv(R')``: MATLAB's
  ``reshape`` fills columns, so ``R'`` is the nine numbers read row by row, negated, and ``R`` is
  its inverse, a matrix close to ``-I`` (determinant -1);
- the translation is applied as ``T = [t_x; t_z; t_y]`` (``depth_world2rgb_world.m``): the
  second component is ``t_z`` and the third ``t_y``, in that order.

Distortion coefficients are in Bouguet's order ``(k1, k2, p1, p2, k3)``, the toolbox's ``kc``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEIGHT, WIDTH = 480, 640  # every Kinect frame of the raw dataset; the toolbox asserts this size
MAX_DEPTH = 10.0  # metres: ``maxDepth``, the clamp of every depth the toolbox returns
DEPTH_PARAM1 = 351.3  # ``depthParam1``: metres = DEPTH_PARAM1 / (DEPTH_PARAM2 - disparity)
DEPTH_PARAM2 = 1092.5  # ``depthParam2``


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels and Bouguet distortion ``(k1, k2, p1, p2, k3)``."""

    fx: float
    fy: float
    cx: float
    cy: float
    k: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)


RGB = Camera(
    fx=5.1885790117450188e02,
    fy=5.1946961112127485e02,
    cx=3.2558244941119034e02,
    cy=2.5373616633400465e02,
    k=(
        2.0796615318809061e-01,
        -5.8613825163911781e-01,
        7.2231363135888329e-04,
        1.0479627195765181e-03,
        4.9856986684705107e-01,
    ),
)

DEPTH = Camera(
    fx=5.8262448167737955e02,
    fy=5.8269103270988637e02,
    cx=3.1304475870804731e02,
    cy=2.3844389626620386e02,
    k=(
        -9.9897236553084481e-02,
        3.9065324602765344e-01,
        1.9290592870229277e-03,
        -1.9422022475975055e-03,
        -5.1031725053400578e-01,
    ),
)

# The nine numbers of ``camera_params.m``'s rotation, in the file's order.
ROTATION_VALUES = (
    9.9997798940829263e-01,
    5.0518419386157446e-03,
    4.3011152014118693e-03,
    -5.0359919480810989e-03,
    9.9998051861143999e-01,
    -3.6879781309514218e-03,
    -4.3196624923060242e-03,
    3.6662365748484798e-03,
    9.9998394948385538e-01,
)

T_X = 2.5031875059141302e-02  # metres
T_Z = -2.9342312935846411e-04
T_Y = 6.6238747008330102e-04


def _toolbox_rotation() -> np.ndarray:
    # reshape(-v, [3 3]) is column-major, so its transpose is -v read row by row (C order).
    r_transposed = -np.asarray(ROTATION_VALUES, dtype=np.float64).reshape(3, 3)
    rotation = np.linalg.inv(r_transposed)
    rotation.setflags(write=False)
    return rotation


R = _toolbox_rotation()  # depth-camera world -> RGB-camera world, as the toolbox applies it
T = np.array([T_X, T_Z, T_Y], dtype=np.float64)  # the toolbox's axis order: x, then z, then y
T.setflags(write=False)
