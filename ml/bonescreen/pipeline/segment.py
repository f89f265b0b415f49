"""MS-Net over the slices of a volume: the mark image of all vertebral bone."""

from __future__ import annotations

import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import BoneScreenError
from ..preprocess import context_stack, seg_input
from ..threads import split_range, thread_map
from .grid import NetGrid
from .inference import InferenceSettings

#: A slice holds bone when at least this many pixels are above :data:`BONE_HU`.
BONE_PIXELS = 40
BONE_HU = 250.0


def slices_with_bone(hu: np.ndarray) -> np.ndarray:
    """Indices of the slices worth segmenting: enough pixels above :data:`BONE_HU`."""
    counts = np.zeros(len(hu), dtype=np.int64)

    def count(part: slice) -> None:
        for k in range(part.start, part.stop, 8):  # 8 slices at a time: the comparison stays in cache
            stop = min(k + 8, part.stop)
            counts[k:stop] = np.count_nonzero(hu[k:stop] > BONE_HU, axis=(1, 2))

    thread_map(count, split_range(len(hu)))  # numpy releases the GIL: one run of slices per core
    return np.nonzero(counts >= BONE_PIXELS)[0]


def seg_stack(
    hu: np.ndarray, spacing: tuple[float, float, float], ks: np.ndarray, grid: NetGrid, channels: int = 1
) -> np.ndarray:
    """MS-Net input for the slices ``ks`` of a (z, y, x) HU volume: float32 (len(ks), channels, 512, 512).

    One channel: the slice (the paper). Three: the slice between its neighbours
    :data:`~bonescreen.preprocess.SEG_CONTEXT_MM` below and above (2.5-D,
    :func:`~bonescreen.preprocess.context_stack`).
    """
    if channels == 1:
        return seg_input(grid.to_net(hu[ks], fill=-1024.0))[:, None]
    if channels != 3:
        raise BoneScreenError(f"MS-Net input has 1 or 3 channels, not {channels}")
    stack = context_stack(hu, spacing[0], ks)
    n, c, rows, cols = stack.shape
    net = grid.to_net(stack.reshape(n * c, rows, cols), fill=-1024.0)
    return seg_input(net).reshape(n, c, *net.shape[1:])


def iter_mark_volume(
    model: torch.nn.Module,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    device: torch.device,
    batch: int = 8,
    threshold: float = 0.5,
    slices: np.ndarray | None = None,
    settings: InferenceSettings = InferenceSettings(),
    stats: dict | None = None,
) -> Generator[tuple[str, int, int], None, np.ndarray]:
    """Boolean (z, y, x) mark of vertebral bone on the input grid, as a generator of progress.

    Yields ``("segment", done, total)`` before the first batch and after each;
    returns the mark (``StopIteration.value``). Closing the generator between
    yields cancels the run. Slices without bone are skipped (``slices`` limits
    the run to some slices); the rest go through MS-Net in batches on the
    network grid (:mod:`.grid`) and the probabilities come back to the input
    grid before thresholding. The next batch is prepared in a second thread
    while the network runs on the current one. ``stats["network_s"]`` (if
    given) accumulates the time spent in the network.
    """
    grid = NetGrid.for_slices(hu.shape[1:], spacing[1:])
    todo = slices_with_bone(hu)
    if slices is not None:
        todo = np.intersect1d(todo, np.asarray(slices))
    mark = np.zeros(hu.shape, dtype=bool)
    batches = [todo[s : s + batch] for s in range(0, len(todo), batch)]

    channels = getattr(model, "in_channels", 1)

    def prepare(ks: np.ndarray) -> torch.Tensor:
        x = settings.input(torch.from_numpy(seg_stack(hu, spacing, ks, grid, channels)))
        return x.pin_memory() if device.type == "cuda" else x  # pinned: the copy to the GPU runs asynchronously

    yield "segment", 0, len(todo)
    done = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, batches[0]) if batches else None
        for i, ks in enumerate(batches):
            x = pending.result()
            pending = pool.submit(prepare, batches[i + 1]) if i + 1 < len(batches) else None
            t0 = time.perf_counter()
            with torch.inference_mode(), settings.forward_context(device):
                prob = model(x.to(device, non_blocking=True))[:, 0]
                # on the network grid the threshold is taken on the device: a quarter of the bytes come back
                out = (prob > threshold) if grid.identity else prob.float()
                out = out.cpu().numpy()
            if stats is not None:
                stats["network_s"] = stats.get("network_s", 0.0) + time.perf_counter() - t0
            mark[ks] = out if grid.identity else grid.from_net(out) > threshold
            done += len(ks)
            yield "segment", done, len(todo)
    return mark
