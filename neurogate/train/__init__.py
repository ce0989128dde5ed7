"""Training: ``fit(model, data, TrainConfig(...))``, checkpoints, torchrun/DDP, metrics.

The CLI ``neurogate train`` is a thin layer over :func:`fit` with the same options.

Example:
    >>> import neurogate as ng
    >>> result = ng.train.fit("lif-convnet", "event-digits", ng.train.TrainConfig(epochs=4))
    >>> model = ng.train.load_model(result.run_dir / "best.pt")
"""

from .checkpoint import load_checkpoint, load_model, restore_model, save_checkpoint
from .config import TrainConfig, config_from_dict, load_config, save_config
from .distributed import EpochBatchSampler, epoch_permutation
from .metrics import evaluate
from .trainer import TrainResult, fit

__all__ = [
    "EpochBatchSampler",
    "TrainConfig",
    "TrainResult",
    "config_from_dict",
    "epoch_permutation",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_config",
    "load_model",
    "restore_model",
    "save_checkpoint",
    "save_config",
]
