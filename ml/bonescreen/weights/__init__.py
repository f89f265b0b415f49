"""Default weights shipped with the package (see README.md in this folder, the model card)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BoneScreenError

WEIGHTS_DIR = Path(__file__).resolve().parent

#: task -> file name of the bundled weights
DEFAULT_WEIGHTS = {"segmentation": "msnet-small.safetensors", "classification": "bccnet.safetensors"}


def default_weights(task: str) -> Path:
    """Path of the bundled weights for ``segmentation`` or ``classification``."""
    try:
        path = WEIGHTS_DIR / DEFAULT_WEIGHTS[task]
    except KeyError:
        raise BoneScreenError(f"task must be 'segmentation' or 'classification', got {task!r}") from None
    if not path.is_file():
        raise BoneScreenError("the bundled weights are missing from this installation", path)
    return path
