"""params.yaml validation: every kind of mistake names the file and the dotted key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from e2e import REPO

from pipeline.config import ConfigError, load_params


@pytest.fixture(scope="module")
def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repo_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "synthetic"
    assert params.data.preprocess.crop_hw == (96, 128)
    assert params.validate.max_depth == 10.0


def test_params_are_frozen() -> None:
    params = load_params(REPO / "params.yaml")
    with pytest.raises(ValueError, match="frozen"):
        params.train.seed = 3


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "lr_rate", 0.1, r"train\.lr_rate: unknown key"),
        ("model", "fast", "yes", r"model\.fast: Input should be a valid boolean"),
        ("model", "decoder", "deconv", r"model\.decoder: Input should be 'upconv' or 'upproj'"),
        ("validate", "mostly", 1.5, r"validate\.mostly: Input should be less than or equal to 1"),
        ("train", "seed", -1, r"train\.seed: Input should be greater than or equal to 0"),
    ],
)
def test_bad_value_names_key_and_file(
    tmp_path: Path, raw_params: dict, section: str, key: str, value: object, expected: str
) -> None:
    params = copy.deepcopy(raw_params)
    params[section][key] = value
    path = write(tmp_path, params)
    with pytest.raises(ConfigError, match=expected) as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_nested_wrong_type(tmp_path: Path, raw_params: dict) -> None:
    params = copy.deepcopy(raw_params)
    params["data"]["synthetic"]["num_images"] = "400"
    with pytest.raises(ConfigError, match=r"data\.synthetic\.num_images: Input should be a valid"):
        load_params(write(tmp_path, params))


def test_missing_section(tmp_path: Path, raw_params: dict) -> None:
    params = copy.deepcopy(raw_params)
    del params["eval"]
    with pytest.raises(ConfigError, match=r"eval: missing"):
        load_params(write(tmp_path, params))


def test_crop_larger_than_resize(tmp_path: Path, raw_params: dict) -> None:
    params = copy.deepcopy(raw_params)
    params["data"]["preprocess"]["crop_hw"] = [300, 304]
    with pytest.raises(ConfigError, match=r"data\.preprocess: .*crop_hw \(300, 304\) is larger"):
        load_params(write(tmp_path, params))


def test_depth_range_ordered(tmp_path: Path, raw_params: dict) -> None:
    params = copy.deepcopy(raw_params)
    params["validate"]["min_depth"] = 12.0
    with pytest.raises(ConfigError, match=r"validate: .*min_depth 12.0 must be below max_depth"):
        load_params(write(tmp_path, params))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match=r"scalar\.yaml: expected a mapping"):
        load_params(scalar)
