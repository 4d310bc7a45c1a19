"""float32 arithmetic whose bytes do not depend on the CPU, and the rotations the renderer uses.

numpy picks SIMD loops by instruction set, and its float32 ``power`` (like float64
``exp``/``log``/``power``) rounds differently in the AVX2 and AVX-512 loops, so whole datasets
differed between machines. Only ufuncs whose loops agree are used by the renderer (float32
``exp``/``log``/``sin``/``cos``, IEEE ``sqrt``); ``tests/test_synthetic.py`` renders at every
dispatch level the CPU has and compares.
"""

from __future__ import annotations

import numpy as np

_F32 = np.float32


def _pow(x: np.ndarray, p: float) -> np.ndarray:
    """``x ** p`` for float32 ``x >= 0`` through float32 ``exp``/``log`` (see the module note)."""
    with np.errstate(divide="ignore"):  # log(0) = -inf -> exp(-inf) = 0, as 0 ** p
        return np.exp(np.log(x) * _F32(p))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column dot product of two (3, P) arrays."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _yaw(vec: np.ndarray, angle: float) -> np.ndarray:
    """Rotate vectors (3, ...) about the vertical axis, like ``_rot_y(angle) @ vec``."""
    c, s = _F32(np.cos(angle)), _F32(np.sin(angle))
    return np.stack([c * vec[0] + s * vec[2], vec[1], c * vec[2] - s * vec[0]])
