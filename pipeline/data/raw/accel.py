"""The ``a-*.dump`` accelerometer frames, read as the toolbox's ``get_accel_data`` mex reads them.

Each file is libfreenect's ``freenect_raw_tilt_state`` struct as the recorder had it in memory
(x86-64, little-endian): int16 ``accelerometer_x``, ``_y``, ``_z``, int8 ``tilt_angle``, one byte
of padding and the int-sized enum ``tilt_status``: 12 bytes. ``get_accel_data.cpp`` rejects a file
of any other size and returns ``[x, y, z, tilt_angle]``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pipeline.data.nyu import NYUFormatError
from pipeline.io import atomic_path

TILT_STATE = struct.Struct("<3hbxi")  # 12 bytes, the C layout of freenect_raw_tilt_state


def read_accel(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """``(accelerometer_x, y, z, tilt_angle)`` of an ``a-*.dump`` file, raw sensor counts."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) != TILT_STATE.size:
        raise NYUFormatError(
            f"{path}: {len(data)} bytes, an accelerometer dump (freenect_raw_tilt_state) has "
            f"{TILT_STATE.size}"
        )
    x, y, z, tilt, _status = TILT_STATE.unpack(data)
    return x, y, z, tilt


def write_accel(
    path: str | os.PathLike[str], x: int, y: int, z: int, tilt_angle: int, tilt_status: int = 0
) -> None:
    """Write an ``a-*.dump`` file as the recorder did (``tilt_status`` 0: the motor stopped)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(TILT_STATE.pack(x, y, z, tilt_angle, tilt_status))
