"""MS-Net training slices from the realistic scene (:mod:`.scene`), made only where a step needs them.

Each sample is one axial slice of a freshly drawn patient and acquisition, brought to
MS-Net's 512x512 grid exactly as inference does (:class:`~bonescreen.pipeline.grid.NetGrid`),
with the mark image of all vertebrae (thoracic, lumbar, sacrum; never ribs, pelvis,
femurs, vessels, arms or the table). Samples are written in shards
(``slices_0000.npz``: ``images`` uint8 (n, 512, 512) = MS-Net input x 255, ``marks``
uint8 (n, 512, 512): 1 vertebra, 0 not, :data:`~bonescreen.preprocess.MARK_IGNORE` where one slice
cannot decide (discs, partial volume; :func:`~.scene.uncertain_mark`), ``spine`` uint8 ids at the
vertebra level of the slice; with
``context``, ``context`` uint8 (n, 2, 512, 512): the same patient and acquisition
about :data:`~bonescreen.preprocess.SEG_CONTEXT_MM` below and above, for the 2.5-D
MS-Net) so a training run reads them without regenerating, and more can be added in
the background; a sample depends only on (seed, index).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..pipeline.grid import NET_SIZE, NetGrid
from ..preprocess import MARK_IGNORE, SEG_CONTEXT_MM, seg_input
from .scene import THORACIC_IDS, draw_acquisition, draw_scene, render_slice, uncertain_mark

#: Slices drawn from one scene before a new patient is drawn.
SLICES_PER_SCENE = 6
#: Distances of a 2.5-D sample's neighbours (mm), drawn around :data:`~bonescreen.preprocess.SEG_CONTEXT_MM`:
#: at inference the neighbours of thick slices are interpolated between slices farther apart.
CONTEXT_RANGE_MM = (SEG_CONTEXT_MM - 1.0, SEG_CONTEXT_MM + 1.0)


def draw_z(rng: np.random.Generator, levels_z: dict[int, float]) -> float:
    """A slice height: mostly T12 to the sacrum, also the chest above and the hips below (mm)."""
    lumbar = (levels_z[5] - 25.0, levels_z[6] + 20.0)
    whole = (levels_z[7] - 170.0, levels_z[THORACIC_IDS[-1]] + 15.0)
    lo, hi = lumbar if rng.random() < 0.55 else whole
    return float(rng.uniform(lo, hi))


def make_scene_slices(seed: int, scene_index: int, count: int = SLICES_PER_SCENE, context: bool = False):
    """``count`` training samples from one drawn patient: (images, marks, info[, context]).

    Returns
    -------
    images : ndarray
        uint8 (count, 512, 512): MS-Net input (0-255 over its HU window).
    marks : ndarray
        uint8 (count, 512, 512): 1 on vertebral bone, :data:`~bonescreen.preprocess.MARK_IGNORE` where
        the slice cannot decide (:func:`~.scene.uncertain_mark`), 0 elsewhere.
    info : list of dict
        Per sample: z (mm), pixel spacing, thickness, field of view, spine ids present
        (and the neighbours' distance).
    context : ndarray
        Only with ``context``: uint8 (count, 2, 512, 512), the slices below and above
        (:data:`CONTEXT_RANGE_MM`) with the same acquisition.
    """
    rng = np.random.default_rng([seed, scene_index])
    scene = draw_scene(rng)
    images = np.empty((count, NET_SIZE, NET_SIZE), np.uint8)
    marks = np.empty((count, NET_SIZE, NET_SIZE), np.uint8)
    around = np.empty((count, 2, NET_SIZE, NET_SIZE), np.uint8) if context else None
    info = []
    for i in range(count):
        z = draw_z(rng, scene.levels_z)
        acq = draw_acquisition(rng, scene, z)
        hu, spine = render_slice(scene, acq, z, rng)
        unsure = uncertain_mark(scene, acq, z)
        mirror = rng.random() < 0.5  # the mark must not depend on the side of the aorta or liver
        if mirror:
            hu, spine, unsure = hu[:, ::-1], spine[:, ::-1], unsure[:, ::-1]
        grid = NetGrid.for_slices(hu.shape, (acq.spacing, acq.spacing))
        on_net = grid.to_net(np.stack([spine > 0, unsure]).astype(np.float32), fill=0.0)
        images[i] = _net_input(grid, hu)
        marks[i] = np.where(on_net[1] > 0.25, MARK_IGNORE, on_net[0] > 0.5)
        info.append(
            {
                "z_mm": round(z, 1),
                "spacing_mm": round(acq.spacing, 3),
                "thickness_mm": round(acq.thickness, 2),
                "fov_mm": round(acq.shape[0] * acq.spacing, 1),
                "ids": sorted(int(v) for v in np.unique(spine) if v),
            }
        )
        if around is not None:
            step = float(rng.uniform(*CONTEXT_RANGE_MM))
            for side, dz in enumerate((-step, step)):
                near = render_slice(scene, acq, z + dz, rng)[0]
                around[i, side] = _net_input(grid, near[:, ::-1] if mirror else near)
            info[-1]["context_mm"] = round(step, 2)
    if around is not None:
        return images, marks, info, around
    return images, marks, info


def _net_input(grid: NetGrid, hu: np.ndarray) -> np.ndarray:
    """One HU slice on MS-Net's grid as uint8 input (0-255 over the window)."""
    return np.round(seg_input(grid.to_net(hu[None], fill=-1024.0)[0]) * 255).astype(np.uint8)


def _shard(args) -> str:
    out, seed, first, scenes, per_scene, context = args
    path = Path(out) / f"slices_{seed}_{first:05d}.npz"
    if path.exists():
        return str(path)
    parts = [make_scene_slices(seed, s, per_scene, context) for s in range(first, first + scenes)]
    tmp = path.with_suffix(".tmp.npz")
    extra = {"context": np.concatenate([p[3] for p in parts])} if context else {}
    np.savez_compressed(
        tmp,
        images=np.concatenate([p[0] for p in parts]),
        marks=np.concatenate([p[1] for p in parts]),
        info=np.array(json.dumps([i for p in parts for i in p[2]])),
        **extra,
    )
    os.replace(tmp, path)
    return str(path)


def write_slice_shards(
    out: str | os.PathLike,
    scenes: int,
    seed: int = 0,
    per_scene: int = SLICES_PER_SCENE,
    scenes_per_shard: int = 20,
    workers: int = 1,
    progress=None,
    context: bool = False,
) -> list[str]:
    """Write ``scenes * per_scene`` training slices as shards under ``out``; existing shards are kept (resume).

    Parameters
    ----------
    out : path
        Folder for ``slices_<seed>_<first scene>.npz``.
    scenes : int
        Patients drawn.
    seed : int
        Seed of the set.
    per_scene : int
        Slices per patient.
    scenes_per_shard : int
        Patients per shard file.
    workers : int
        Processes.
    progress : callable, optional
        Called with (shards done, total).
    context : bool
        Also the slices around each one (2.5-D MS-Net; three times the rendering).
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(out), seed, f, min(scenes_per_shard, scenes - f), per_scene, context)
        for f in range(0, scenes, scenes_per_shard)
    ]
    done: list[str] = []
    if workers <= 1:
        for j in jobs:
            done.append(_shard(j))
            if progress:
                progress(len(done), len(jobs))
        return done
    with ProcessPoolExecutor(workers) as pool:
        for path in pool.map(_shard, jobs):
            done.append(path)
            if progress:
                progress(len(done), len(jobs))
    return done
