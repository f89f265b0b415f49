"""Training with the paper's schedules: Adam + linear decay (MS-Net), SGD + inverse power (BCC-Net)."""

from .loop import TrainConfig, TrainEvent, evaluate_model, seed_everything, train
from .schedules import classification_lr, segmentation_lr

__all__ = [
    "TrainConfig",
    "TrainEvent",
    "classification_lr",
    "evaluate_model",
    "seed_everything",
    "segmentation_lr",
    "train",
]
