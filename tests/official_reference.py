"""An independent reference of the authors' TF graph (fcrn.py + network.py), for equality tests.

Written from the TF semantics, not from `pipeline.model.official`: NHWC tensors, HWIO kernels,
`tf_pad` + VALID convolution (network.py's `conv`), TF `SAME` max pooling as a window maximum,
`tf.nn.batch_normalization`'s formula, the stack + reshape `interleave` of network.py, float64
throughout. Also: random weights in the official names and shapes, and writers of the two file
formats the authors publish (a TF tensor bundle, from the format spec; the pickled .npy).
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-4


def tf_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) on NHWC."""
    n, h, w, c = x.shape
    out = x.new_zeros(n, h + top + bottom, w + left + right, c)
    out[:, top : top + h, left : left + w] = x
    return out


def conv_valid(x: torch.Tensor, kernel: np.ndarray, stride: int = 1) -> torch.Tensor:
    """tf.nn.conv2d(x, kernel, strides, padding='VALID'): NHWC input, HWIO kernel."""
    k = torch.from_numpy(kernel).double().permute(3, 2, 0, 1)  # only the layout changes
    return F.conv2d(x.permute(0, 3, 1, 2), k, stride=stride).permute(0, 2, 3, 1)


def conv(
    w: Mapping[str, np.ndarray],
    name: str,
    x: torch.Tensor,
    stride: int = 1,
    relu: bool = False,
    same: bool = True,
) -> torch.Tensor:
    """network.py `conv`: SAME pads (k - 1) // 2 on both sides, then VALID; bias if present."""
    kernel = w[f"{name}/weights"]
    if same:
        ph, pw = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
        x = tf_pad(x, ph, ph, pw, pw)
    y = conv_valid(x, kernel, stride)
    if f"{name}/biases" in w:
        y = y + torch.from_numpy(w[f"{name}/biases"]).double()
    return torch.relu(y) if relu else y


def bn(w: Mapping[str, np.ndarray], name: str, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """tf.nn.batch_normalization: (x - mean) * scale / sqrt(variance + eps) + offset."""
    p = {k: torch.from_numpy(w[f"{name}/{k}"]).double() for k in ("mean", "variance", "scale")}
    offset = torch.from_numpy(w[f"{name}/offset"]).double()
    y = (x - p["mean"]) * p["scale"] / torch.sqrt(p["variance"] + EPS) + offset
    return torch.relu(y) if relu else y


def max_pool_same(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """tf.nn.max_pool(padding='SAME'): out = ceil(in / s); the padding total is split with the
    larger half at the end; padded cells are ignored (never the maximum)."""
    _, h, w, _ = x.shape
    oh, ow = -(-h // s), -(-w // s)
    ph, pw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
    top, left = ph // 2, pw // 2
    padded = torch.full((x.shape[0], h + ph, w + pw, x.shape[3]), -torch.inf, dtype=x.dtype)
    padded[:, top : top + h, left : left + w] = x
    windows = [
        padded[:, i : i + (oh - 1) * s + 1 : s, j : j + (ow - 1) * s + 1 : s]
        for i in range(k)
        for j in range(k)
    ]
    return torch.stack(windows).amax(0)


def interleave(tensors: list[torch.Tensor], axis: int) -> torch.Tensor:
    """network.py `interleave`: stack on axis + 1, reshape so that axis doubles."""
    shape = list(tensors[0].shape)
    shape[axis] *= len(tensors)
    return torch.stack(tensors, axis + 1).reshape(shape)


def unpool_as_conv(w: Mapping[str, np.ndarray], lid: str, x: torch.Tensor, relu: bool):
    a = conv(w, f"layer{lid}_ConvA", x)
    b = conv(w, f"layer{lid}_ConvB", tf_pad(x, 1, 0, 1, 1), same=False)
    c = conv(w, f"layer{lid}_ConvC", tf_pad(x, 1, 1, 1, 0), same=False)
    d = conv(w, f"layer{lid}_ConvD", tf_pad(x, 1, 0, 1, 0), same=False)
    left = interleave([a, b], axis=1)
    right = interleave([c, d], axis=1)
    y = bn(w, f"layer{lid}_BN", interleave([left, right], axis=2))
    return torch.relu(y) if relu else y


def up_project(w: Mapping[str, np.ndarray], uid: str, x: torch.Tensor) -> torch.Tensor:
    out = unpool_as_conv(w, f"{uid}_br1", x, relu=True)
    branch1 = bn(w, f"layer{uid}_BN", conv(w, f"layer{uid}_Conv", out))
    branch2 = unpool_as_conv(w, f"{uid}_br2", x, relu=False)
    return torch.relu(branch1 + branch2)


BLOCKS = {2: "abc", 3: "abcd", 4: "abcdef", 5: "abc"}


def reference_forward(w: Mapping[str, np.ndarray], rgb255: np.ndarray) -> np.ndarray:
    """ResNet50UpProj on NHWC RGB 0-255 (float) -> NHWC depth, float64."""
    x = torch.from_numpy(rgb255).double()
    x = bn(w, "bn_conv1", conv(w, "conv1", x, stride=2), relu=True)
    x = max_pool_same(x, 3, 2)
    for stage, letters in BLOCKS.items():
        for letter in letters:
            n = f"{stage}{letter}"
            stride = 2 if letter == "a" and stage != 2 else 1
            if letter == "a":
                shortcut = bn(w, f"bn{n}_branch1", conv(w, f"res{n}_branch1", x, stride))
            else:
                shortcut = x
            y = bn(w, f"bn{n}_branch2a", conv(w, f"res{n}_branch2a", x, stride), relu=True)
            y = bn(w, f"bn{n}_branch2b", conv(w, f"res{n}_branch2b", y), relu=True)
            y = bn(w, f"bn{n}_branch2c", conv(w, f"res{n}_branch2c", y))
            x = torch.relu(shortcut + y)
    x = bn(w, "layer1_BN", conv(w, "layer1", x))
    for uid in ("2x", "4x", "8x", "16x"):
        x = up_project(w, uid, x)
    return conv(w, "ConvPred", x, relu=True).numpy()


def random_weights(shapes: Mapping[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """float32 arrays in the given TF names and shapes, scaled to keep activations O(1):
    He-normal kernels, BN statistics and affine parameters near the identity."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        param = name.rsplit("/", 1)[1]
        if param == "weights":
            fan_in = int(np.prod(shape[:3]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif param in ("variance", "scale"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # biases, mean, offset
            value = rng.normal(0.0, 0.1, shape)
        out[name] = value.astype(np.float32)
    return out


# --- Writers of the authors' two formats ---------------------------------------------------

_DTYPE_ENUM = {np.dtype("<f4"): 1, np.dtype("<f8"): 2, np.dtype("<i4"): 3, np.dtype("<i8"): 9}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    """A LevelDB table block with prefix-compressed keys and a restart point every N keys."""
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return (
        bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    )


def write_bundle(prefix: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """PREFIX.index + PREFIX.data-00000-of-00001 as tf.train.Saver lays them out (one shard,
    uncompressed blocks; CRCs left zero: the reader under test does not check them)."""
    data = bytearray()
    entries = [(b"", _field(1, 1))]  # BundleHeaderProto: num_shards 1, little-endian
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dims = b"".join(_field(2, _field(1, d)) for d in array.shape)
        msg = _field(1, _DTYPE_ENUM[array.dtype.newbyteorder("<")]) + _field(2, dims)
        msg += _field(4, len(data)) * bool(len(data)) + _field(5, array.nbytes)
        entries.append((name.encode(), msg))
        data += array.tobytes()
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    index = bytearray()
    blocks = [entries[i : i + 40] for i in range(0, len(entries), 40)]  # several data blocks
    handles = []
    for chunk in blocks:
        block = _block(chunk)
        handles.append((chunk[-1][0], _varint(len(index)) + _varint(len(block))))
        index += block + b"\0" * 5
    meta = _block([])
    meta_handle = _varint(len(index)) + _varint(len(meta))
    index += meta + b"\0" * 5
    top = _block(handles)
    top_handle = _varint(len(index)) + _varint(len(top))
    index += top + b"\0" * 5
    footer = (meta_handle + top_handle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(index + footer))


def write_npy(path: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """The authors' .npy: np.save of a dict {layer: {param: array}} (a pickled 0-d object)."""
    layers: dict[str, dict[str, np.ndarray]] = {}
    for name, array in tensors.items():
        layer, param = name.rsplit("/", 1)
        layers.setdefault(layer, {})[param] = array
    np.save(path, np.array(layers, dtype=object), allow_pickle=True)


def write_zip(path: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """The published archive's layout: NYU_FCRN-checkpoint/NYU_FCRN.ckpt.{index,data-*}."""
    staging = path.parent / f"{path.stem}-bundle"
    staging.mkdir()
    write_bundle(staging / "NYU_FCRN.ckpt", tensors)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(staging.iterdir()):
            archive.write(file, f"NYU_FCRN-checkpoint/{file.name}")
            file.unlink()
    staging.rmdir()
