"""Read and write the raw dataset's Kinect frames: ``d-*.pgm`` disparity and ``r-*.ppm`` RGB.

The recorder wrote each frame as a Netpbm header (``P5 640 480 65535`` or ``P6 640 480 255``)
followed by the sensor's buffer as it was in memory. For depth that buffer is little-endian
uint16, although the PGM format says 16-bit samples are big-endian; the toolbox therefore reads
a depth frame with ``swapbytes(imread(...))``. Reading the payload as ``'<u2'`` is the same thing
in one step. The header is parsed here (no image library) because a library that follows the
format would decode the bytes big-endian and may rescale samples by ``maxval``; both would
silently change every disparity. Every malformed file raises :class:`NYUFormatError` naming it.
The writers produce the same bytes as the recorder (for synthetic raw scenes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data.nyu import NYUFormatError
from pipeline.io import atomic_path

_WHITESPACE = b" \t\n\r\v\f"


def _parse_header(data: bytes, path: Path, magic: bytes) -> tuple[int, int, int, int]:
    """``(width, height, maxval, payload offset)`` of a binary Netpbm file (``#`` comments too)."""
    if data[:2] != magic:
        raise NYUFormatError(
            f"{path}: not a binary {'PGM' if magic == b'P5' else 'PPM'} file "
            f"(starts with {data[:2]!r}, expected {magic!r})"
        )
    pos, fields = 2, []
    while len(fields) < 3:
        separated = False  # each field follows whitespace (a comment counts as whitespace)
        while pos < len(data) and (data[pos] in _WHITESPACE or data[pos] == ord("#")):
            if data[pos] == ord("#"):
                end = data.find(b"\n", pos)
                pos = len(data) if end < 0 else end
            pos += 1
            separated = True
        end = pos
        while end < len(data) and data[end : end + 1].isdigit():
            end += 1
        if not separated or end == pos:
            raise NYUFormatError(f"{path}: malformed Netpbm header at byte {pos}")
        fields.append(int(data[pos:end]))
        pos = end
    if pos >= len(data) or data[pos] not in _WHITESPACE:  # exactly one whitespace byte follows
        raise NYUFormatError(f"{path}: malformed Netpbm header: no raster after maxval")
    width, height, maxval = fields
    if width == 0 or height == 0 or not 0 < maxval < 65536:
        raise NYUFormatError(
            f"{path}: bad Netpbm header (width {width}, height {height}, maxval {maxval})"
        )
    return width, height, maxval, pos + 1


def _payload(data: bytes, path: Path, offset: int, expected: int) -> bytes:
    got = len(data) - offset
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise NYUFormatError(
            f"{path}: {what}: {got} bytes of pixel data, the header promises {expected}"
        )
    return data[offset:]


def read_pgm(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``d-*.pgm`` frame as ``(480, 640)`` uint16 disparity: the values after ``swapbytes``."""
    path = Path(path)
    data = path.read_bytes()
    width, height, maxval, offset = _parse_header(data, path, b"P5")
    if maxval < 256:
        raise NYUFormatError(f"{path}: 8-bit PGM (maxval {maxval}); Kinect depth is 16-bit")
    raster = _payload(data, path, offset, width * height * 2)
    return np.frombuffer(raster, dtype="<u2").reshape(height, width).astype(np.uint16)


def read_ppm(path: str | os.PathLike[str]) -> np.ndarray:
    """An ``r-*.ppm`` frame as ``(480, 640, 3)`` uint8 RGB."""
    path = Path(path)
    data = path.read_bytes()
    width, height, maxval, offset = _parse_header(data, path, b"P6")
    if maxval > 255:
        raise NYUFormatError(f"{path}: 16-bit PPM (maxval {maxval}); Kinect RGB is 8-bit")
    raster = _payload(data, path, offset, width * height * 3)
    return np.frombuffer(raster, dtype=np.uint8).reshape(height, width, 3).copy()


def write_pgm(path: str | os.PathLike[str], disparity: np.ndarray) -> None:
    """Write a depth frame as the recorder did: ``P5 W H 65535`` and a little-endian payload."""
    frame = np.asarray(disparity)
    if frame.ndim != 2 or frame.dtype != np.uint16:
        raise ValueError(
            f"{path}: a depth frame is a 2-D uint16 array, got {frame.dtype} {frame.shape}"
        )
    header = f"P5 {frame.shape[1]} {frame.shape[0]} 65535\n".encode()
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + frame.astype("<u2").tobytes())


def write_ppm(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an RGB frame as the recorder did: ``P6 W H 255`` and the RGB bytes row by row."""
    frame = np.asarray(rgb)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"{path}: an RGB frame is an (H, W, 3) uint8 array, got {frame.dtype} {frame.shape}"
        )
    header = f"P6 {frame.shape[1]} {frame.shape[0]} 255\n".encode()
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + np.ascontiguousarray(frame).tobytes())
