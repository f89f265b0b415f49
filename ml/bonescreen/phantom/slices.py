"""MS-Net training slices from the realistic scene (:mod:`.scene`), made only where a step needs them.

Each sample is one axial slice of a freshly drawn patient and acquisition, brought to
MS-Net's 512x512 grid exactly as inference does (:class:`~bonescreen.pipeline.grid.NetGrid`),
with the mark image of all vertebrae (thoracic, lumbar, sacrum; never ribs, pelvis,
femurs, vessels, arms or the table). Samples are written in shards
(``slices_0000.npz``: ``images`` uint8 (n, 512, 512) = MS-Net input x 255, ``marks``
uint8 (n, 512, 512), ``spine`` uint8 ids at the vertebra level of the slice) so a
training run reads them without regenerating, and more can be added in the
background; a sample depends only on (seed, index).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..pipeline.grid import NET_SIZE, NetGrid
from ..preprocess import seg_input
from .scene import THORACIC_IDS, draw_acquisition, draw_scene, render_slice

#: Slices drawn from one scene before a new patient is drawn.
SLICES_PER_SCENE = 6


def draw_z(rng: np.random.Generator, levels_z: dict[int, float]) -> float:
    """A slice height: mostly T12 to the sacrum, also the chest above and the hips below (mm)."""
    lumbar = (levels_z[5] - 25.0, levels_z[6] + 20.0)
    whole = (levels_z[7] - 170.0, levels_z[THORACIC_IDS[-1]] + 15.0)
    lo, hi = lumbar if rng.random() < 0.55 else whole
    return float(rng.uniform(lo, hi))


def make_scene_slices(seed: int, scene_index: int, count: int = SLICES_PER_SCENE):
    """``count`` training samples from one drawn patient: (images, marks, spine ids, info).

    Returns
    -------
    images : ndarray
        uint8 (count, 512, 512): MS-Net input (0-255 over its HU window).
    marks : ndarray
        uint8 (count, 512, 512): 1 on vertebral bone.
    info : list of dict
        Per sample: z (mm), pixel spacing, thickness, field of view, spine ids present.
    """
    rng = np.random.default_rng([seed, scene_index])
    scene = draw_scene(rng)
    images = np.empty((count, NET_SIZE, NET_SIZE), np.uint8)
    marks = np.empty((count, NET_SIZE, NET_SIZE), np.uint8)
    info = []
    for i in range(count):
        z = draw_z(rng, scene.levels_z)
        acq = draw_acquisition(rng, scene, z)
        hu, spine = render_slice(scene, acq, z, rng)
        if rng.random() < 0.5:  # left-right mirror: the mark must not depend on the side of the aorta or liver
            hu, spine = hu[:, ::-1], spine[:, ::-1]
        grid = NetGrid.for_slices(hu.shape, (acq.spacing, acq.spacing))
        net_hu = grid.to_net(hu[None], fill=-1024.0)[0]
        net_mark = grid.to_net((spine[None] > 0).astype(np.float32), fill=0.0)[0] > 0.5
        images[i] = np.round(seg_input(net_hu) * 255).astype(np.uint8)
        marks[i] = net_mark
        info.append(
            {
                "z_mm": round(z, 1),
                "spacing_mm": round(acq.spacing, 3),
                "thickness_mm": round(acq.thickness, 2),
                "fov_mm": round(acq.shape[0] * acq.spacing, 1),
                "ids": sorted(int(v) for v in np.unique(spine) if v),
            }
        )
    return images, marks, info


def _shard(args) -> str:
    out, seed, first, scenes, per_scene = args
    path = Path(out) / f"slices_{seed}_{first:05d}.npz"
    if path.exists():
        return str(path)
    parts = [make_scene_slices(seed, s, per_scene) for s in range(first, first + scenes)]
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        images=np.concatenate([p[0] for p in parts]),
        marks=np.concatenate([p[1] for p in parts]),
        info=np.array(json.dumps([i for p in parts for i in p[2]])),
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
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(out), seed, f, min(scenes_per_shard, scenes - f), per_scene) for f in range(0, scenes, scenes_per_shard)
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
