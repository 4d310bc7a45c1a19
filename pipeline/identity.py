"""What makes two trainings the same one: the key a checkpoint resumes under and an MLflow run
continues under, and the md5 of the training data, hashed once per run for both."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Params
from pipeline.io import md5sum


@dataclass(frozen=True)
class TrainingIdentity:
    """One training: the validated ``model`` and ``train`` params (defaults filled in, so
    ``lr: 0.010`` and ``lr: 0.01`` agree), the data it trains on, and its process count (a
    checkpoint of 2 DDP ranks does not resume on 1). Eval and MLflow params are not part of it."""

    key: str
    train_h5: Path
    data_md5: str

    @classmethod
    def of(cls, params: Params, train_h5: Path, world: int) -> TrainingIdentity:
        md5 = md5sum(train_h5)
        identity = [params.model.model_dump(), params.train.model_dump(), md5, world]
        blob = json.dumps(identity, sort_keys=True)
        return cls(hashlib.sha256(blob.encode()).hexdigest()[:16], train_h5, md5)
