"""MS-Net over the slices of a volume: the mark image of all vertebral bone."""

from __future__ import annotations

from collections.abc import Generator

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


def iter_mark_volume(
    model: torch.nn.Module,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    device: torch.device,
    batch: int = 8,
    threshold: float = 0.5,
    slices: np.ndarray | None = None,
) -> Generator[tuple[str, int, int], None, np.ndarray]:
    """Boolean (z, y, x) mark of vertebral bone on the input grid, as a generator of progress.

    Yields ``("segment", done, total)`` before the first batch and after each;
    returns the mark (``StopIteration.value``). Closing the generator between
    yields cancels the run. Slices without bone are skipped (``slices`` limits
    the run to some slices); the rest go through MS-Net in batches on the
    network grid (:mod:`.grid`) and the probabilities come back to the input
    grid before thresholding.
    """
    grid = NetGrid.for_slices(hu.shape[1:], spacing[1:])
    todo = slices_with_bone(hu)
    if slices is not None:
        todo = np.intersect1d(todo, np.asarray(slices))
    mark = np.zeros(hu.shape, dtype=bool)
    yield "segment", 0, len(todo)
    for start in range(0, len(todo), batch):
        ks = todo[start : start + batch]
        x = seg_input(grid.to_net(hu[ks], fill=-1024.0))
        with torch.inference_mode():
            prob = model(torch.from_numpy(x[:, None]).to(device)).float().cpu().numpy()[:, 0]
        mark[ks] = grid.from_net(prob) > threshold
        yield "segment", min(start + batch, len(todo)), len(todo)
    return mark


def drive(gen: Generator, progress: ProgressCallback | None):
    """Run a progress generator to its end, reporting to ``progress`` (which may cancel); return its value."""
    while True:
        try:
            stage, done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        try:
            report(progress, stage, done, total)
        except Exception:
            gen.close()
            raise


def mark_volume(
    model: torch.nn.Module,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    device: torch.device,
    batch: int = 8,
    threshold: float = 0.5,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """:func:`iter_mark_volume` with a ``progress(stage, done, total)`` callback that may cancel."""
    return drive(iter_mark_volume(model, hu, spacing, device, batch, threshold), progress)
