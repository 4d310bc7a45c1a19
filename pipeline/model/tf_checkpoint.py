"""Read a TensorFlow checkpoint (a "tensor bundle") without TensorFlow.

A bundle is ``PREFIX.index`` plus ``PREFIX.data-NNNNN-of-MMMMM`` shards. The index is a LevelDB
table (TF's ``core/lib/io/table``) whose keys are tensor names and whose values are
``BundleEntryProto`` messages (dtype, shape, shard, offset, size); the key "" holds the
``BundleHeaderProto`` (number of shards, endianness). The data shards are the tensors' raw
bytes, row-major. This reads only what checkpoints written by ``tf.train.Saver`` use: unsliced
tensors of numeric dtypes in uncompressed blocks; anything else is an error naming the tensor.

The blocks' and tensors' CRC32C checksums are not verified (the standard library has no
CRC32C and a pure-Python one would take minutes for 250 MB); a damaged download is caught by
the archive's SHA-256 instead, a wrong size by the shape check.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB's table magic number, the footer's last 8 bytes
FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the magic
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked CRC32C (4 bytes)
# tensorflow/core/framework/types.proto DataType -> numpy, little-endian.
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}


class CheckpointError(ValueError):
    """A file that is not a readable TF checkpoint; the message names it and why."""


@dataclass(frozen=True)
class Entry:
    """Where a tensor lives: ``BundleEntryProto``'s fields that this reader uses."""

    dtype: np.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(msg: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(msg):
        key, pos = _varint(msg, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 2:
            length, pos = _varint(msg, pos)
            value, pos = msg[pos : pos + length], pos + length
        elif wire == 5:  # fixed32 (the CRC)
            value, pos = int.from_bytes(msg[pos : pos + 4], "little"), pos + 4
        elif wire == 1:  # fixed64
            value, pos = int.from_bytes(msg[pos : pos + 8], "little"), pos + 8
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        yield field, value


def _shape(msg: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim (field 2), each with size (field 1)."""
    dims = []
    for field, dim in _fields(msg):
        if field == 2:
            size = dict(_fields(dim)).get(1, 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)  # int64: -1 = unknown
    return tuple(dims)


def _entry(name: str, msg: bytes) -> Entry:
    dtype, shape, shard, offset, size = 0, (), 0, 0, 0
    for field, value in _fields(msg):
        if field == 1:
            dtype = value
        elif field == 2:
            shape = _shape(value)
        elif field == 3:
            shard = value
        elif field == 4:
            offset = value
        elif field == 5:
            size = value
        elif field == 7:
            raise CheckpointError(f"tensor {name!r} is partitioned (slices): not supported")
    if dtype not in DTYPES:
        raise CheckpointError(f"tensor {name!r} has TF dtype enum {dtype}: not a numeric tensor")
    return Entry(np.dtype(DTYPES[dtype]), shape, shard, offset, size)


def _block(data: bytes, handle: bytes) -> bytes:
    """The contents of the block a BlockHandle (offset, size varints) points to."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + BLOCK_TRAILER_SIZE > len(data):
        raise CheckpointError("a block handle points past the end of the file")
    if data[offset + size] != 0:
        raise CheckpointError("compressed table blocks are not supported")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of a table block: prefix-compressed keys, then the restart array."""
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 * (num_restarts + 1)
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + length]
        pos += length


def read_index(index: bytes, source: str) -> tuple[int, dict[str, Entry]]:
    """(number of data shards, tensor name -> Entry) of a ``.index`` file's bytes."""
    try:
        if len(index) < FOOTER_SIZE:
            raise CheckpointError("shorter than a table footer")
        footer = index[-FOOTER_SIZE:]
        if int.from_bytes(footer[-8:], "little") != TABLE_MAGIC:
            raise CheckpointError("no table magic number at the end")
        _, pos = _varint(footer, _varint(footer, 0)[1])  # skip the metaindex handle
        index_block = _block(index, footer[pos:])
        num_shards, entries = 1, {}
        for _, handle in _block_entries(index_block):
            for key, value in _block_entries(_block(index, handle)):
                name = key.decode()
                if name == "":  # BundleHeaderProto: num_shards (1), endianness (2, 0 = little)
                    header = dict(_fields(value))
                    num_shards = header.get(1, 1)
                    if header.get(2, 0) != 0:
                        raise CheckpointError("big-endian bundles are not supported")
                else:
                    entries[name] = _entry(name, value)
    except (CheckpointError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise CheckpointError(f"{source}: not a TensorFlow checkpoint index ({e})") from None
    return num_shards, entries


def data_shard_name(prefix: str, shard: int, num_shards: int) -> str:
    """TF's shard file name: ``PREFIX.data-00000-of-00001``."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def read_tensors(
    index: bytes, open_shard: Callable[[int, int], BinaryIO], source: str
) -> dict[str, np.ndarray]:
    """Every tensor of a bundle. ``open_shard(shard, num_shards)`` opens a data file for reading;
    tensors are read in file order, so a forward-only stream (a zip member) is enough."""
    num_shards, entries = read_index(index, source)
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted({e.shard for e in entries.values()}):
        with open_shard(shard, num_shards) as f:
            position = 0
            for name, e in sorted(entries.items(), key=lambda kv: kv[1].offset):
                if e.shard != shard:
                    continue
                expected = int(np.prod(e.shape)) * e.dtype.itemsize
                if e.size != expected:
                    raise CheckpointError(
                        f"{source}: tensor {name!r} {e.shape} {e.dtype} should take {expected} "
                        f"bytes, the index says {e.size}"
                    )
                if e.offset < position:
                    raise CheckpointError(f"{source}: tensor {name!r} overlaps another")
                f.read(e.offset - position)  # forward-only skip (zip members cannot seek fast)
                raw = f.read(e.size)
                if len(raw) != e.size:
                    raise CheckpointError(f"{source}: data shard {shard} ends inside {name!r}")
                position = e.offset + e.size
                tensors[name] = np.frombuffer(raw, e.dtype).reshape(e.shape).copy()
    return tensors
