"""Frame pairing as get_synched_frames.m does it: forward-only pointers, ties advance."""

from __future__ import annotations

import pytest

from pipeline.data.nyu import NYUFormatError
from pipeline.data.raw import synced_frames
from pipeline.data.raw.sync import frame_time


def test_each_depth_frame_gets_the_nearest_later_frames_by_hand():
    names = [
        "d-1315403270.612296-3297269125.pgm",
        "d-1315403270.645636-3299271197.pgm",
        "r-1315403270.593508-3296461305.ppm",
        "r-1315403270.627344-3298463380.ppm",
        "r-1315403270.660847-3300465458.ppm",
        "a-1315403270.601234-1.dump",
        "a-1315403270.699000-2.dump",
        "INDEX.txt",
    ]
    # 270.612296: RGB .593508 (0.018788) vs .627344 (0.015048) -> .627344; accel .601234.
    # 270.645636: RGB .627344 (0.018292) vs .660847 (0.015211) -> .660847; accel .601234
    # (0.044402) vs .699000 (0.053364) -> stays.
    assert synced_frames(names) == [
        (names[0], names[3], names[5]),
        (names[1], names[4], names[5]),
    ]


def test_a_tie_advances_to_the_later_frame():
    # 1.5 is exactly 0.5 from 1.0 and from 2.0 (exact in binary): the pointer moves on.
    names = ["d-1.5-0.pgm", "r-1.0-0.ppm", "r-2.0-1.ppm", "a-1.25-0.dump", "a-1.75-1.dump"]
    assert synced_frames(names) == [("d-1.5-0.pgm", "r-2.0-1.ppm", "a-1.75-1.dump")]


def test_pointers_never_go_back():
    # Names sort as strings, so "1x.0" comes before "9.0": RGB order is 10.0, 11.0, 9.0.
    # Depth 11.0 moves the pointer to r-11.0; depth 9.9 then starts there and moves on to r-9.0
    # (0.9 away), never back to the nearer r-10.0 (0.1 away) behind it.
    names = ["d-11.0-0.pgm", "d-9.9-1.pgm", "r-10.0-0.ppm", "r-11.0-1.ppm", "r-9.0-2.ppm"]
    names += ["a-10.0-0.dump", "a-11.0-1.dump", "a-9.0-2.dump"]
    assert synced_frames(names) == [
        ("d-11.0-0.pgm", "r-11.0-1.ppm", "a-11.0-1.dump"),
        ("d-9.9-1.pgm", "r-9.0-2.ppm", "a-9.0-2.dump"),
    ]


def test_names_are_sorted_and_classified_by_first_letter():
    names = ["r-2.0-0.ppm", "d-3.0-1.pgm", "d-1.0-0.pgm", "a-2.0-0.dump", "INDEX.txt", "x-1.0"]
    assert synced_frames(reversed(names)) == [
        ("d-1.0-0.pgm", "r-2.0-0.ppm", "a-2.0-0.dump"),
        ("d-3.0-1.pgm", "r-2.0-0.ppm", "a-2.0-0.dump"),
    ]


def test_no_depth_frames_no_pairs():
    assert synced_frames(["r-1.0-0.ppm", "INDEX.txt"]) == []


def test_missing_rgb_frames_is_an_error():
    with pytest.raises(NYUFormatError, match="no RGB"):
        synced_frames(["d-1.0-0.pgm", "a-1.0-0.dump"])


def test_timestamp_is_the_first_number():
    assert frame_time("r-1315403270.593508-3296461305.ppm") == 1315403270.593508
    with pytest.raises(NYUFormatError, match=r"d-abc-1\.pgm: no timestamp"):
        frame_time("d-abc-1.pgm")
