"""Training a face generator on the user's own photos: prepare -> run -> export.

Everything here runs locally; faces never leave the machine.
"""

from core.train.dcgan import TrainConfig, TrainProgress, TrainResult, train
from core.train.export import export_bundle
from core.train.prepare import PrepareOptions, PrepareSummary, prepare_dataset, read_summary

__all__ = [
    "PrepareOptions",
    "PrepareSummary",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "export_bundle",
    "prepare_dataset",
    "read_summary",
    "train",
]
