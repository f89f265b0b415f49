"""MS-Net over the slices of a volume: the mark image of all vertebral bone."""

from __future__ import annotations

import numpy as np
import torch

from ..preprocess import seg_input
from .grid import NetGrid
from .progress import ProgressCallback, report

#: A slice holds bone when at least this many pixels are above :data:`BONE_HU`.
BONE_PIXELS = 40
BONE_HU = 250.0


def slices_with_bone(hu: np.ndarray) -> np.ndarray:
    """Indices of the slices worth segmenting: enough pixels above :data:`BONE_HU`."""
    counts = (hu > BONE_HU).sum(axis=(1, 2))
    return np.nonzero(counts >= BONE_PIXELS)[0]


@torch.inference_mode()
def mark_volume(
    model: torch.nn.Module,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    device: torch.device,
    batch: int = 8,
    threshold: float = 0.5,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Boolean (z, y, x) mark of vertebral bone on the input grid.

    Slices without bone are skipped; the rest go through MS-Net in batches on
    the network grid (see :mod:`.grid`) and the probabilities come back to the
    input grid before thresholding. ``progress("segment", done, total)`` is
    called after each batch and may cancel.
    """
    grid = NetGrid.for_slices(hu.shape[1:], spacing[1:])
    todo = slices_with_bone(hu)
    mark = np.zeros(hu.shape, dtype=bool)
    report(progress, "segment", 0, len(todo))
    for start in range(0, len(todo), batch):
        ks = todo[start : start + batch]
        x = seg_input(grid.to_net(hu[ks], fill=-1024.0))
        prob = model(torch.from_numpy(x[:, None]).to(device)).float().cpu().numpy()[:, 0]
        mark[ks] = grid.from_net(prob) > threshold
        report(progress, "segment", min(start + batch, len(todo)), len(todo))
    return mark
