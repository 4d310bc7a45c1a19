"""params.yaml -> frozen, validated config objects.

Every model forbids unknown keys, so a typo such as ``train.lr_rate`` fails at load time with the
file and the dotted key instead of being silently ignored for a whole training run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

DEFAULT_PARAMS = Path("params.yaml")
# (resize_hw, crop_hw) of the authors' released model: 240x320 frames, 228x304 network input.
OFFICIAL_SIZES = ((240, 320), (228, 304))


class ConfigError(ValueError):
    """A params file that cannot be used; the message names the file and each bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NYUSourceConfig(_Section):
    labeled_url: str
    labeled_md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    splits_url: str
    splits_md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    retries: int = Field(ge=0)  # consecutive attempts without progress before giving up
    backoff_s: float = Field(ge=0.0)  # first retry delay; doubles per failed attempt


class SyntheticConfig(_Section):
    seed: int = Field(ge=0)
    num_images: int = Field(ge=2, le=65_535)  # splits.mat holds uint16 indices
    test_fraction: float = Field(gt=0.0, lt=1.0)


class PreprocessConfig(_Section):
    resize_hw: tuple[StrictInt, StrictInt] = Field(strict=False)  # YAML gives lists
    crop_hw: tuple[StrictInt, StrictInt] = Field(strict=False)

    @model_validator(mode="after")
    def _crop_fits(self) -> PreprocessConfig:
        if min(self.resize_hw) <= 0 or min(self.crop_hw) <= 0:
            raise ValueError("sizes must be positive")
        if self.crop_hw[0] > self.resize_hw[0] or self.crop_hw[1] > self.resize_hw[1]:
            raise ValueError(f"crop_hw {self.crop_hw} is larger than resize_hw {self.resize_hw}")
        return self


class RawTwinConfig(_Section):
    """Size of the synthetic raw twin (``data.source: synthetic`` with ``train_source: raw``)."""

    scenes: int = Field(ge=2)  # rooms, each one raw scene folder; split by data.synthetic
    frames: int = Field(ge=2)  # synced depth frames per scene (one camera path)
    labeled_per_scene: int = Field(ge=1)  # frames of each path also written to the labeled file

    @model_validator(mode="after")
    def _labeled_fit(self) -> RawTwinConfig:
        if self.labeled_per_scene > self.frames:
            raise ValueError(f"labeled_per_scene {self.labeled_per_scene} exceeds frames")
        return self


class RawConfig(_Section):
    """The NYU Depth v2 raw video frames: where the archives are and how frames are sampled."""

    base_url: str  # archive <name> is <base_url>/<name>.zip, its checksum <name>.zip.md5
    archives: tuple[str, ...] = Field(strict=False, min_length=1)
    step: int = Field(ge=1)  # every step-th synced frame of each training scene
    max_frames: int | None = Field(default=None, ge=1)  # evenly thinned to at most this many
    twin: RawTwinConfig


class DataConfig(_Section):
    source: Literal["synthetic", "nyu"]
    train_source: Literal["labeled", "raw"]  # the test split is always the labeled one
    nyu: NYUSourceConfig
    synthetic: SyntheticConfig
    raw: RawConfig
    preprocess: PreprocessConfig


class ValidateConfig(_Section):
    min_depth: float = Field(ge=0.0)
    max_depth: float = Field(gt=0.0)
    mostly: float = Field(gt=0.0, le=1.0)
    min_valid_fraction: float = Field(ge=0.0, le=1.0)
    raw_min_valid_fraction: float = Field(ge=0.0, le=1.0)  # train split from raw frames
    max_reported_indices: int = Field(ge=1)

    @model_validator(mode="after")
    def _range_ordered(self) -> ValidateConfig:
        if self.min_depth >= self.max_depth:
            raise ValueError(f"min_depth {self.min_depth} must be below max_depth {self.max_depth}")
        return self


class OfficialWeightsConfig(_Section):
    """Where `model.init: official` gets the authors' TF checkpoint (NYU_FCRN-checkpoint.zip)."""

    url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    retries: int = Field(ge=0)  # consecutive attempts without progress before giving up
    backoff_s: float = Field(ge=0.0)  # first retry delay; doubles per failed attempt


class ModelConfig(_Section):
    arch: Literal["torchvision", "official"]  # official: the authors' TF graph, exactly
    init: Literal["none", "official"]  # official: start from the authors' trained NYU weights
    official: OfficialWeightsConfig
    decoder: Literal["upconv", "upproj"]
    fast: bool
    encoder: Literal["resnet50", "resnet18"] = "resnet50"  # resnet18: the quick variant
    encoder_weights: str = Field(min_length=1)
    final_relu: bool

    @model_validator(mode="after")
    def _official_consistent(self) -> ModelConfig:
        if self.init == "official" and self.arch != "official":
            raise ValueError("init 'official' needs arch 'official' (-S model.arch=official)")
        if self.arch == "official" and self.encoder != "resnet50":
            raise ValueError("arch 'official' is the authors' ResNet-50: -S model.encoder=resnet50")
        if self.arch == "official" and self.encoder_weights != "none":
            raise ValueError(
                "encoder_weights applies to arch 'torchvision'; arch 'official' takes its "
                "weights from init (-S model.encoder_weights=none)"
            )
        if self.arch == "official" and (self.decoder, self.final_relu) != ("upproj", True):
            raise ValueError("arch 'official' is up-projection with a final ReLU (decoder upproj)")
        return self


class AugmentConfig(_Section):
    """Paper's (Eigen-style) training augmentations; each is drawn per image from a seeded RNG."""

    scale: tuple[float, float] = Field(strict=False)  # image scaled by s, depth divided by s
    rotation_deg: float = Field(ge=0.0, le=45.0)  # uniform in [-r, r]
    color: float = Field(ge=0.0, lt=1.0)  # per-channel RGB gain uniform in [1 - c, 1 + c]
    hflip: bool

    @model_validator(mode="after")
    def _scale_ordered(self) -> AugmentConfig:
        lo, hi = self.scale
        if not 1.0 <= lo <= hi:
            raise ValueError(f"scale {self.scale} must satisfy 1 <= low <= high")
        return self


class TrainConfig(_Section):
    seed: int = Field(ge=0)
    loss: Literal["berhu", "l1", "l2"]
    optimizer: Literal["sgd", "adam", "adamw"]
    lr: float = Field(gt=0.0)
    momentum: float = Field(ge=0.0, lt=1.0)  # sgd only
    weight_decay: float = Field(ge=0.0)
    schedule: Literal["plateau", "cosine"]
    plateau_factor: float = Field(gt=0.0, lt=1.0)  # lr *= factor when val rel stops improving...
    plateau_patience: int = Field(ge=0)  # ...for this many epochs
    epochs: int = Field(ge=0)  # 0: publish model.init's weights untrained (init official only)
    batch_size: int = Field(ge=1)  # per process; the effective batch is batch_size * nproc
    val_fraction: float = Field(ge=0.0, lt=1.0)  # of the train split, held out per epoch
    workers: int = Field(ge=0)
    precision: Literal["auto", "fp32", "bf16"]
    deterministic: bool
    # portable: the same bytes on any x86-64 CPU with AVX2, in training and evaluation
    # (pipeline.portable: fp32, AVX2 kernels, fixed threads) | native: the fastest kernels this
    # CPU has (bits follow the CPU kind). A CUDA GPU is used in both (bits follow the GPU).
    reproducible: Literal["native", "portable"]
    nproc: int = Field(ge=1)  # DDP processes on this machine (GPUs, or CPU processes with gloo)
    sync_bn: bool  # SyncBatchNorm across DDP processes
    sync_every: int = Field(ge=1)  # steps between reads of loss and finite checks from the device
    data_on: Literal["auto", "loader", "device"]  # where batches are augmented
    device_memory_fraction: float = Field(gt=0.0, le=1.0)  # auto: device if the split fits in it
    compile: bool  # torch.compile the model (first compile timed apart in train_speed.json)
    augment: AugmentConfig

    @model_validator(mode="after")
    def _plateau_needs_val(self) -> TrainConfig:
        if self.schedule == "plateau" and self.val_fraction == 0.0:
            raise ValueError("schedule 'plateau' needs val_fraction > 0 (it watches val rel)")
        if self.reproducible == "portable" and (self.precision == "bf16" or not self.deterministic):
            raise ValueError(
                "reproducible 'portable' trains in fp32 with deterministic algorithms: set "
                "precision to auto or fp32 and deterministic to true"
            )
        return self


class EvalConfig(_Section):
    protocol: Literal["laina", "eigen", "crop"]  # the headline of reports/metrics.json
    batch_size: int = Field(ge=1)
    num_examples: int = Field(ge=1, le=16)  # test images shown in reports/predictions.png


class MlflowConfig(_Section):
    experiment: str = Field(min_length=1)
    registered_model: str = Field(min_length=1)
    onnx: bool = True  # new versions carry the ONNX export too (about a minute on 2 cores)


class Params(_Section):
    data: DataConfig
    validate_: ValidateConfig = Field(alias="validate")
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    mlflow: MlflowConfig

    @model_validator(mode="after")
    def _official_init_runs_as_trained(self) -> Params:
        """The authors' model ran on 228x304 crops of 240x320 frames; other sizes would score a
        different model. Epochs 0 (publish untrained) makes sense only for imported weights."""
        if self.train.epochs == 0 and self.model.init != "official":
            raise ValueError(
                "train.epochs 0 publishes the initial weights untrained: only with "
                "model.init=official (-S model.arch=official -S model.init=official)"
            )
        pre = self.data.preprocess
        if self.model.init == "official" and (pre.resize_hw, pre.crop_hw) != OFFICIAL_SIZES:
            (rh, rw), (ch, cw) = OFFICIAL_SIZES
            raise ValueError(
                f"model.init official: the authors' model works on {ch}x{cw} crops of {rh}x{rw} "
                f"frames, data.preprocess has crop_hw {list(pre.crop_hw)} of resize_hw "
                f"{list(pre.resize_hw)}: add -S 'data.preprocess.resize_hw=[{rh},{rw}]' "
                f"-S 'data.preprocess.crop_hw=[{ch},{cw}]'"
            )
        return self

    @property
    def validate(self) -> ValidateConfig:  # "validate" shadows a pydantic name, hence the alias
        return self.validate_


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "<top level>"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: missing"
    if error["type"] == "value_error":  # a validator's own message; the input is a section
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    got = error.get("input")
    return f"{key}: {error['msg']} (got {got!r})"


def parse_params(raw: object, source: str | os.PathLike[str] = "<params>") -> Params:
    """Validate an already-parsed params mapping; errors name ``source`` and every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{source}: invalid params:\n  {lines}") from None


def read_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> tuple[Params, dict[str, Any]]:
    """Read a params.yaml file once: the validated params, and the YAML as written (what MLflow
    records as the run's params and what the training's identity hashes)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, path), raw


def load_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> Params:
    """Read and validate a params.yaml file."""
    return read_params(path)[0]
