"""The training loop: FCRN on the processed train split, one epoch at a time, resumable.

Every epoch ends with a checkpoint (model, optimizer, scheduler, RNG state, log rows) written
atomically under the key of the training it belongs to (`pipeline.identity`). Re-running
after a kill resumes from it and ends with the weights an uninterrupted run would have (on the
CPU, bit for bit): the data order and augmentations are functions of (seed, epoch, image), not
of how far a generator had advanced. A finished run deletes its checkpoint, and a run with other
params or data never resumes from a checkpoint that is not its own.

Modules: `setup` (batches, network, optimizer), `loop` (one epoch, divergence,
validation), `checkpoint` (save, read, resume), `outputs` (publishing), `run` (`train`).
"""

from pipeline.train.checkpoint import CHECKPOINT_KEYS
from pipeline.train.loop import EpochHook, EpochStats, TrainingDiverged, train_epoch
from pipeline.train.outputs import TrainOutputs
from pipeline.train.run import train
from pipeline.train.setup import TrainData, build_data, make_optimizer, model_on_device
from pipeline.train_log import COLUMNS as LOG_COLUMNS

__all__ = [
    "CHECKPOINT_KEYS",
    "LOG_COLUMNS",
    "EpochHook",
    "EpochStats",
    "TrainData",
    "TrainOutputs",
    "TrainingDiverged",
    "build_data",
    "make_optimizer",
    "model_on_device",
    "train",
    "train_epoch",
]
