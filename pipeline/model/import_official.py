"""`fcrn-import-official SRC --out models/fcrn-official.pt`: the authors' weights as a model file.

SRC is what the authors publish: the checkpoint prefix ``NYU_FCRN.ckpt`` (beside its ``.index``
and ``.data-*`` files), the ``NYU_FCRN-checkpoint.zip`` holding them, or the NumPy export
``NYU_ResNet-UpProj.npy`` (a pickled dict layer -> {param: array}). Every tensor is mapped by
name and shape onto `OfficialFCRN` (HWIO -> OIHW; BN scale / offset / mean / variance ->
weight / bias / running_mean / running_var); a missing, extra or mis-shaped tensor is an error
naming it. No TensorFlow needed: `pipeline.model.tf_checkpoint` reads the bundle.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from numpy.lib import format as npy_format
from torch import nn

from pipeline.config import OFFICIAL_SIZES
from pipeline.model.io import save_model
from pipeline.model.official import OfficialFCRN
from pipeline.model.tf_checkpoint import CheckpointError, data_shard_name, read_tensors
from pipeline.stage import run_stage

_BN_PARAMS = {
    "scale": "weight",
    "offset": "bias",
    "mean": "running_mean",
    "variance": "running_var",
}
# Integer index tables that the authors' older interleave (tf.dynamic_stitch) kept as variables
# named x_0..x_3 (uniquified x_0_1, ...): graph constants, not weights; skipped if present.
_INDEX_TABLE = re.compile(r"x_[0-3](_\d+)?")


def official_names(model: OfficialFCRN) -> dict[str, str]:
    """TF variable name (``res2a_branch1/weights``) -> state_dict key, for every weight."""
    names: dict[str, str] = {}
    for layer, module in model.layers.items():
        prefix = f"layers.{layer}"
        if isinstance(module, nn.Conv2d):
            names[f"{layer}/weights"] = f"{prefix}.weight"
            if module.bias is not None:
                names[f"{layer}/biases"] = f"{prefix}.bias"
        else:
            names.update({f"{layer}/{tf}": f"{prefix}.{pt}" for tf, pt in _BN_PARAMS.items()})
    return names


def _to_torch(array: np.ndarray, target: torch.Tensor) -> torch.Tensor:
    """A TF array in PyTorch layout: conv kernels HWIO -> OIHW."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.permute(3, 2, 0, 1).contiguous() if target.ndim == 4 else tensor


def _tf_shape(target: torch.Tensor) -> tuple[int, ...]:
    return tuple(target.permute(2, 3, 1, 0).shape) if target.ndim == 4 else tuple(target.shape)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def state_dict_from_tf(
    tensors: Mapping[str, np.ndarray], source: str, model: OfficialFCRN | None = None
) -> dict[str, torch.Tensor]:
    """`OfficialFCRN`'s state_dict from TF-named arrays; refuses anything that does not match.

    ``model`` (the one the weights go into) gives the names and shapes; without it one is built.
    """
    model = model or OfficialFCRN()
    state = model.state_dict()
    names = official_names(model)
    extra = sorted(
        k
        for k, v in tensors.items()
        if k not in names and not (_INDEX_TABLE.fullmatch(k) and v.dtype.kind in "iu")
    )
    missing = sorted(set(names) - set(tensors))
    if missing or extra:
        problems = [f"missing {_listing(missing)}"] * bool(missing)
        problems += [f"unexpected {_listing(extra)}"] * bool(extra)
        raise CheckpointError(
            f"{source}: not the official ResNet-UpProj weights ({'; '.join(problems)})"
        )
    out = dict(state)  # num_batches_tracked stays as built
    for tf_name, key in names.items():
        array, want = tensors[tf_name], _tf_shape(state[key])
        if tuple(array.shape) != want or array.dtype.kind != "f":
            raise CheckpointError(
                f"{source}: {tf_name} is {array.dtype} {tuple(array.shape)}, expected float {want}"
            )
        out[key] = _to_torch(array, state[key])
    return out


class _NumpyOnly(pickle.Unpickler):
    """Unpickles arrays, dicts and strings only: a .npy of objects can otherwise run code."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_npy(path: Path) -> dict[str, np.ndarray]:
    """The authors' ``.npy`` export (Python 2 pickle of {layer: {param: array}}), flattened to
    TF names ``layer/param``."""
    try:
        with path.open("rb") as f:
            version = npy_format.read_magic(f)
            read_header = {(1, 0): npy_format.read_array_header_1_0}.get(
                version, npy_format.read_array_header_2_0
            )
            _, _, dtype = read_header(f)  # (shape, fortran order, dtype)
            if dtype.hasobject:
                layers = _NumpyOnly(f, encoding="latin1").load()
                if isinstance(layers, np.ndarray):
                    layers = layers.item()
            else:
                raise ValueError("holds a plain array, not the dict of layers")
        return {
            f"{layer}/{param}": np.asarray(value)
            for layer, params in layers.items()
            for param, value in params.items()
        }
    except (ValueError, OSError, EOFError, AttributeError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"{path}: not the authors' .npy weights ({e})") from None


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as archive:
            indexes = [n for n in archive.namelist() if n.endswith(".ckpt.index")]
            if len(indexes) != 1:
                raise CheckpointError(f"{path}: expected one *.ckpt.index inside, found {indexes}")
            prefix = indexes[0].removesuffix(".index")
            index = archive.read(indexes[0])
            return read_tensors(
                index,
                lambda shard, n: archive.open(data_shard_name(prefix, shard, n)),
                f"{path}:{indexes[0]}",
            )
    except (zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint archive ({e})") from None


def read_official(src: str | Path) -> dict[str, np.ndarray]:
    """TF-named arrays from a checkpoint prefix, the published zip, or the ``.npy`` export."""
    src = Path(src)
    if src.suffix == ".zip" and src.is_file():
        return _read_zip(src)
    if src.suffix == ".npy" and src.is_file():
        return read_npy(src)
    index = Path(f"{src}.index")
    if not index.is_file():
        raise FileNotFoundError(
            f"{src}: neither a .zip, a .npy nor a checkpoint prefix (no {index.name} beside it)"
        )
    return read_tensors(
        index.read_bytes(), lambda shard, n: open(data_shard_name(str(src), shard, n), "rb"), src
    )


def import_official(src: str | Path) -> OfficialFCRN:
    """`OfficialFCRN` holding the weights in ``src`` (see `read_official`), in eval mode."""
    model = OfficialFCRN()
    model.load_state_dict(state_dict_from_tf(read_official(src), str(src), model))
    return model.eval()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fcrn-import-official", description=__doc__)
    parser.add_argument("src", type=Path, help="NYU_FCRN.ckpt prefix, its .zip, or the .npy")
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    args = parser.parse_args(argv)
    model = import_official(args.src)
    save_model(model, {"arch": "official"}, args.out, *OFFICIAL_SIZES)
    print(f"{args.src} -> {args.out} (official ResNet-UpProj, {len(model.state_dict())} tensors)")


def main() -> None:
    """Console entry point: expected errors print one ``error:`` line and exit 1."""
    run_stage(cli)


if __name__ == "__main__":
    main()
