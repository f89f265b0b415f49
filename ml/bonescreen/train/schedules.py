"""The paper's learning-rate schedules (section 3.2)."""

from __future__ import annotations

from ..errors import BoneScreenError

#: MS-Net: Adam, lr 0.002 for the first 100 of 150 epochs, then linear decay to 0.
SEG_BASE_LR = 0.002
#: MS-Net fine-tuned from weights (``--init-weights``) without ``--lr``: Adam at 1e-4, the rate the bundled weights were
#: fine-tuned at (weights/README.md). At the paper's 0.002 a short fine-tune undoes what the weights had learned
#: (helper-111: one epoch on TotalSegmentator's example CT took its own Dice from 0.782 to 0.639).
SEG_FINE_TUNE_LR = 1e-4
#: BCC-Net: SGD momentum 0.9, lr = 0.01 * (1 + 0.006 * iter) ** -0.98, weight decay 0.005.
CLS_BASE_LR = 0.01
CLS_GAMMA = 0.006
CLS_POWER = 0.98
CLS_WEIGHT_DECAY = 0.005


def segmentation_lr(epoch: int, epochs: int, base_lr: float = SEG_BASE_LR, constant_fraction: float = 2 / 3) -> float:
    """Learning rate of MS-Net in ``epoch`` (0-based) of ``epochs``.

    Constant for the first ``round(epochs * constant_fraction)`` epochs (100 of
    the paper's 150), then falling linearly so that it would reach 0 at
    ``epochs``: with 150 epochs, epoch 100 uses ``base_lr``, epoch 149 uses
    ``base_lr / 50``.
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise BoneScreenError(f"epoch must be in [0, {epochs}), got {epoch}")
    constant = round(epochs * constant_fraction)
    if epoch < constant:
        return base_lr
    return base_lr * (epochs - epoch) / (epochs - constant)


def classification_lr(
    iteration: int, base_lr: float = CLS_BASE_LR, gamma: float = CLS_GAMMA, power: float = CLS_POWER
) -> float:
    """Learning rate of BCC-Net at ``iteration`` (0-based): ``base * (1 + gamma * iter) ** -power``."""
    if iteration < 0:
        raise BoneScreenError(f"iteration must be >= 0, got {iteration}")
    return base_lr * (1.0 + gamma * iteration) ** (-power)
