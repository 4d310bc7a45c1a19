"""Pair a scene's depth frames with RGB and accelerometer frames as ``get_synched_frames.m`` does.

A raw scene folder holds ``d-<t>-<n>.pgm``, ``r-<t>-<n>.ppm`` and ``a-<t>-<n>.dump`` files, where
``<t>`` is the recording machine's clock in seconds (``%f``, microseconds) and ``<n>`` the Kinect's
own frame counter. The toolbox:

- sorts the file names as strings (MATLAB ``sort`` of a cell array: character codes) and sorts
  them into depth / RGB / accelerometer by their first character (its patterns ``'^d-*'`` etc.
  match any name that starts with that letter);
- keeps every depth frame, and for each, in order, moves an RGB pointer and an accelerometer
  pointer that only ever go forward and start where the previous depth frame left them: a pointer
  advances while the next frame's time difference ``|t_depth - t_next|`` is not larger than the
  current one, so ties advance;
- takes ``t`` as the first ``-``-separated number after the two-character prefix.

With names of equal width (10-digit Unix times) this picks the nearest frame, the later one on a
tie. It differs from a nearest-frame search when names sort out of time order (times of different
widths, a clock step): then a pointer never goes back to an earlier, nearer frame. The toolbox
splits ``ls`` output and drops the empty string after its final newline (``files(end) = []``);
this function takes the names themselves, so there is nothing to drop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.data.nyu import NYUFormatError

# What MATLAB's str2double accepts for these names: a plain decimal number, optional exponent.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


_EXTENSIONS = {"d": "pgm", "r": "ppm", "a": "dump"}


def frame_name(kind: str, seconds: float, counter: int) -> str:
    """The recorder's file name for a frame: ``<d|r|a>-<seconds, %f>-<Kinect counter>.<ext>``."""
    return f"{kind}-{seconds:f}-{counter}.{_EXTENSIONS[kind]}"


def frame_time(name: str) -> float:
    """The toolbox's timestamp of a raw file name: the first number after the ``x-`` prefix."""
    first = name[2:].split("-", 1)[0]
    if not _NUMBER.fullmatch(first):
        raise NYUFormatError(f"{name}: no timestamp in this raw file name (expected x-<t>-<n>.ext)")
    return float(first)


def _advance(pointer: int, times: list[float], t_depth: float) -> int:
    """Move ``pointer`` forward while the next frame is not farther from ``t_depth``."""
    diff = abs(t_depth - times[pointer])
    while pointer + 1 < len(times):
        next_diff = abs(t_depth - times[pointer + 1])
        if next_diff > diff:
            break
        diff = next_diff
        pointer += 1
    return pointer


def synced_frames(file_names: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(depth, rgb, accelerometer)`` names for every depth frame of a scene, in name order.

    ``file_names`` are the scene folder's entries (base names; other files are ignored as the
    toolbox ignores them). A scene with depth frames but no RGB or no accelerometer frame raises
    :class:`NYUFormatError`, where the toolbox would stop with an indexing error.
    """
    depth, rgb, accel = [], [], []
    for name in sorted(file_names):
        if name.startswith("d"):
            depth.append(name)
        elif name.startswith("r"):
            rgb.append(name)
        elif name.startswith("a"):
            accel.append(name)
    if not depth:
        return []
    for kind, names in (("RGB (r-*)", rgb), ("accelerometer (a-*)", accel)):
        if not names:
            raise NYUFormatError(
                f"{depth[0]}: the scene has {len(depth)} depth frames but no {kind} frame to pair"
            )
    rgb_times = [frame_time(n) for n in rgb]
    accel_times = [frame_time(n) for n in accel]
    pairs, j, k = [], 0, 0
    for name in depth:
        t = frame_time(name)
        j = _advance(j, rgb_times, t)
        k = _advance(k, accel_times, t)
        pairs.append((name, rgb[j], accel[k]))
    return pairs
