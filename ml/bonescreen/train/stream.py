"""Time-boxed MS-Net training on a GPU fed by phantom generators running beside it.

A lent GPU machine comes for minutes, with many CPU cores. Drawing the realistic phantom's
slices (:mod:`bonescreen.phantom.slices`, about 2 slices per second per core) is then the
bottleneck, not the network: worker processes draw slices for the whole run while the GPU
trains on every slice drawn so far, kept on the GPU as uint8 (:class:`GpuPool`), with the
paper's rotation and translation and, optionally, a randomized HU scale (:func:`augment_batch`).
Several variants (start weights, learning rate, augmentation) train side by side on the same
stream, so one lease compares them. The schedule follows wall-clock time: the paper's constant
rate for the first 2/3 of the budget, then linear to zero (:func:`time_lr`).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue
import re
import time
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import write_text_atomic
from ..checkpoint import load_model, save_checkpoint
from ..errors import BoneScreenError, check_number
from ..nets.registry import create_model
from ..preprocess import MARK_IGNORE, SEG_WINDOW, preprocessing_config
from ..threads import usable_cores
from .loop import recalibrate_batchnorm

#: HU about which the randomized scale of :func:`augment_batch` turns (soft tissue stays put).
SCALE_CENTRE_HU = 40.0


@dataclass
class Variant:
    """One network trained on the stream.

    Parameters
    ----------
    name : str
        Used in file names (letters, digits, ``-``, ``_``).
    init : str, optional
        Weights to start from (a folder or .safetensors); None starts at random.
    lr : float
        Base learning rate (Adam).
    intensity : bool
        Randomize the HU scale, offset, noise and blur of its inputs (:func:`augment_batch`).
    """

    name: str
    init: str | None
    lr: float
    intensity: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise BoneScreenError(f"variant name {self.name!r}: use letters, digits, - and _ only (it names files)")

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``NAME:INIT:LR:AUG`` (INIT ``random`` or a path; AUG 0 or 1) -> Variant.

        Raises
        ------
        BoneScreenError
            If the text has not four fields or LR is no positive number.
        """
        parts = text.split(":")
        if len(parts) != 4:
            raise BoneScreenError(f"variant {text!r} is not NAME:INIT:LR:AUG")
        name, init, lr, aug = parts
        try:
            rate = float(lr)
        except ValueError:
            rate = -1.0
        if not rate > 0 or aug not in ("0", "1"):
            raise BoneScreenError(f"variant {text!r}: LR must be a positive number and AUG 0 or 1")
        return cls(name, None if init == "random" else init, rate, aug == "1")


class GpuPool:
    """A ring of uint8 (image, mark) slices on one device; the oldest are overwritten when full.

    Parameters
    ----------
    capacity : int
        Slices held.
    size : int
        Side of a slice (512 on MS-Net's grid).
    device : torch.device
        Where the slices live.
    """

    def __init__(self, capacity: int, size: int, device: torch.device) -> None:
        self.images = torch.zeros((capacity, size, size), dtype=torch.uint8, device=device)
        self.marks = torch.zeros((capacity, size, size), dtype=torch.uint8, device=device)
        self.capacity, self.count, self.added = capacity, 0, 0

    def add(self, images: np.ndarray, marks: np.ndarray) -> None:
        """Append (n, size, size) uint8 images and marks (the last ``capacity`` of them when n is larger)."""
        if len(images) != len(marks):
            raise BoneScreenError(f"{len(images)} images but {len(marks)} marks")
        keep = min(len(images), self.capacity)
        slots = torch.arange(self.added + len(images) - keep, self.added + len(images)) % self.capacity
        slots = slots.to(self.images.device)
        self.images[slots] = torch.from_numpy(np.ascontiguousarray(images[len(images) - keep :])).to(self.images.device)
        self.marks[slots] = torch.from_numpy(np.ascontiguousarray(marks[len(marks) - keep :])).to(self.marks.device)
        self.added += len(images)
        self.count = min(self.added, self.capacity)

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random slices: uint8 images and marks, (n, size, size)."""
        idx = torch.randint(0, self.count, (n,), generator=gen).to(self.images.device)
        return self.images[idx], self.marks[idx]


def default_workers() -> int:
    """Generator processes for this machine: every usable core but one (which feeds the network)."""
    return max(1, usable_cores() - 1)


def time_lr(fraction: float, base: float) -> float:
    """The paper's MS-Net schedule over a time budget: ``base`` for the first 2/3, then linear to 0.

    Parameters
    ----------
    fraction : float
        Share of the budget spent, 0-1.
    base : float
        Base learning rate.
    """
    if fraction < 2 / 3:
        return base
    return base * max(0.0, (1.0 - fraction) * 3.0)


def _hu(x: torch.Tensor) -> torch.Tensor:
    lo, hi = SEG_WINDOW
    return x * (hi - lo) + lo


def _x(hu: torch.Tensor) -> torch.Tensor:
    lo, hi = SEG_WINDOW
    return ((hu - lo) / (hi - lo)).clamp(0.0, 1.0)


def augment_batch(
    images: torch.Tensor, marks: torch.Tensor, gen: torch.Generator, intensity: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 slices and marks -> augmented float input (n, 1, H, W) in 0-1 and mark (n, 1, H, W).

    Geometry as the paper: a rotation within +-10 degrees and a translation within +-8 % of the
    side (bilinear for the image, nearest for the mark, air and "not vertebra" outside). With
    ``intensity``, each slice's HU above the window's floor are scaled by 0.85-1.15 about
    :data:`SCALE_CENTRE_HU` and shifted by -25..25 HU, then on some slices blurred (Gaussian,
    sigma 0.5-1.5 pixels) and given noise (SD up to 20 HU): the mark must rest on shape and
    context more than on the phantom's exact HU (domain randomization, Billot et al., Med Image
    Anal 2023). The window's floor (air) stays at 0.
    """
    n, h, w = images.shape
    device = images.device
    x = images.float().div_(255.0).unsqueeze(1)
    y = marks.float().unsqueeze(1)

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen).to(device)

    angle = (draw(n) * 2 - 1) * math.radians(10.0)
    shift = (draw(n, 2) * 2 - 1) * 0.08 * 2  # affine_grid's coordinates run -1..1
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if intensity:
        inside = x > 0
        scale = 0.85 + 0.3 * draw(n, 1, 1, 1)
        offset = (draw(n, 1, 1, 1) * 2 - 1) * 25.0
        hu = (_hu(x) - SCALE_CENTRE_HU) * scale + SCALE_CENTRE_HU + offset
        blur = draw(n) < 0.3
        if bool(blur.any()):
            sigma = 0.5 + float(draw(1)) * 1.0
            radius = 3
            t = torch.arange(-radius, radius + 1, device=device, dtype=x.dtype)
            k = torch.exp(-0.5 * (t / sigma) ** 2)
            k = k / k.sum()
            sub = hu[blur]
            sub = F.conv2d(F.pad(sub, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            sub = F.conv2d(F.pad(sub, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
            hu[blur] = sub
        noisy = (draw(n, 1, 1, 1) < 0.5).float() * draw(n, 1, 1, 1) * 20.0
        hu = hu + noisy * torch.randn(hu.shape, generator=gen).to(device)
        x = torch.where(inside, _x(hu), torch.zeros_like(x))
    return x, y


def _realistic_job(seed: int, first: int, scenes: int) -> tuple[np.ndarray, np.ndarray]:
    from ..phantom.slices import make_scene_slices

    parts = [make_scene_slices(seed, s) for s in range(first, first + scenes)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _first_phantom_job(seed: int, index: int, per_case: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_case`` slices of first-phantom case (seed, index), spread over its height (as train-seg)."""
    from ..data.datasets import evenly_spaced, uint8_input
    from ..phantom.generate import make_case

    case = make_case(seed, index)
    picks = evenly_spaced(case.hu.shape[0], per_case)
    return uint8_input(case.hu[picks]), (case.spine[picks] > 0).astype(np.uint8)


@dataclass
class StreamPlan:
    """What :func:`train_stream` draws and for how long.

    Parameters
    ----------
    budget_s : float
        Wall-clock seconds of the whole run, from the first job to the last snapshot (the
        schedule spans the time left after the first slices arrive; the run stops with an error
        if they have not arrived when 3/4 of it is spent).
    workers : int
        Generator processes (:func:`default_workers`).
    seed : int
        Realistic-phantom seed of the training stream (its validation uses ``seed + 1``).
    first_seed : int
        First-phantom seed (cases 0.. train; validation uses ``first_seed + 1``).
    first_per_case : int
        Slices per first-phantom case.
    first_share : float
        Share of each batch from the first phantom.
    batch_size : int
        Slices per step.
    snapshots : tuple of float
        Budget fractions at which each variant's weights are written.
    val_scenes, val_cases : int
        Held-out realistic scenes and first-phantom cases for the validation Dice.
    capacity : int
        Realistic slices held on the device (a ring).
    scenes_per_job : int
        Realistic scenes a generator job draws.
    labelled : tuple of LabelledCT
        Real CT with vertebra labels (:func:`~bonescreen.data.labelled.find_labelled`): every slice that
        holds a vertebra is kept on the device, and ``labelled_share`` of each batch is drawn from them.
    labelled_share : float
        Share of each batch from ``labelled``.
    """

    budget_s: float = 420.0
    workers: int = field(default_factory=default_workers)
    seed: int = 100
    first_seed: int = 1000
    first_per_case: int = 36
    first_share: float = 0.2
    batch_size: int = 32
    snapshots: tuple = (0.6, 1.0)
    val_scenes: int = 40
    val_cases: int = 4
    capacity: int = 60000
    scenes_per_job: int = 3
    labelled: tuple = ()
    labelled_share: float = 0.25

    def check(self) -> None:
        """Refuse a plan that cannot run.

        Raises
        ------
        BoneScreenError
            Naming the setting: a budget, worker count, batch size, capacity or scene count under 1 (the
            budget: not above 0), a snapshot outside (0, 1], a share outside [0, 1), or shares that leave no
            realistic slice in a batch.
        """
        check_number("budget_s", self.budget_s, 0.0, None, low_open=True)
        for name in ("workers", "batch_size", "capacity", "scenes_per_job", "first_per_case"):
            check_number(name, getattr(self, name), 1, None, whole=True)
        for name in ("val_scenes", "val_cases"):
            check_number(name, getattr(self, name), 0, None, whole=True)
        if not self.snapshots or not all(0 < f <= 1 for f in self.snapshots):
            raise BoneScreenError(f"snapshots {list(self.snapshots)}: give budget fractions above 0 and at most 1")
        for name in ("first_share", "labelled_share"):
            check_number(name, getattr(self, name), 0.0, 1.0, high_open=True)
        n_first, n_real = self.batch_counts()
        if self.batch_size - n_first - n_real < 1:
            raise BoneScreenError(
                f"a batch of {self.batch_size} holds {n_first} first-phantom and {n_real} labelled slices: "
                "none is left for the realistic phantom (a larger batch or smaller shares)"
            )

    def batch_counts(self) -> tuple[int, int]:
        """Slices per batch from the first phantom and from the labelled CT: each share rounded, at least
        one where the share is above 0 (a share that rounds to none would leave that data unused)."""

        def count(share: float) -> int:
            return max(1, round(self.batch_size * share)) if share > 0 else 0

        return count(self.first_share), count(self.labelled_share) if self.labelled else 0


def _dice(model: nn.Module, images: np.ndarray, marks: np.ndarray, device: torch.device) -> float:
    """Mean per-slice Dice of the mark (> 0.5) against ``marks`` (MARK_IGNORE left out)."""
    from ..metrics import dice_score

    model.eval()
    scores = []
    with torch.inference_mode():
        for k in range(0, len(images), 16):
            x = torch.from_numpy(images[k : k + 16]).to(device).float().div(255.0).unsqueeze(1)
            out = model(x).float().cpu().numpy()[:, 0] > 0.5
            for p, t in zip(out, marks[k : k + 16], strict=True):
                d = dice_score(p & (t != MARK_IGNORE), t == 1)
                if not math.isnan(d):
                    scores.append(d)
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def _plan_json(plan: StreamPlan) -> dict:
    """The plan as JSON: labelled CT by name and image path."""
    doc = {k: v for k, v in vars(plan).items() if k != "labelled"}
    doc["labelled"] = [{"name": c.name, "image": str(Path(c.image).resolve())} for c in plan.labelled]
    return doc


def _save(model: nn.Module, path: Path, variant: Variant, plan: StreamPlan, entry: dict) -> None:
    """A weights file (fp16 safetensors + JSON) that ``--seg-weights`` takes, with how it was trained."""
    meta = {
        "task": "segmentation",
        "input_size": 512,
        "preprocessing": preprocessing_config(),
        "training": {
            "stream": "bonescreen.train.stream (time-boxed, phantom slices drawn while training)",
            "variant": vars(variant),
            "plan": _plan_json(plan),
            "schedule": "paper: constant 2/3 then linear to 0, over wall-clock time",
            "optimizer": "Adam",
        },
        "snapshot": {k: v for k, v in entry.items() if k != "val"},
    }
    save_checkpoint(path, model, meta, storage_dtype=torch.float16)


def train_stream(out: str | os.PathLike, variants: list[Variant], plan: StreamPlan, device: torch.device) -> dict:
    """Train ``variants`` of MS-Net (width 1/4) on slices drawn while they train; write their snapshots.

    Parameters
    ----------
    out : path
        Folder for ``<variant>_<percent>.safetensors`` and ``.json`` (``msnet-small`` weights,
        fp16, that ``--seg-weights`` takes) and
        ``stream_log.json`` (throughput, losses, validation Dice per snapshot).
    variants : list of Variant
        Networks trained side by side on the same batches.
    plan : StreamPlan
        Data, budget and batch.
    device : torch.device
        Where the networks train (a GPU; the CPU works for a short check).

    Returns
    -------
    dict
        The log written to ``stream_log.json``.

    Raises
    ------
    BoneScreenError
        If no variant is given or two share a name.
    """
    if not variants or len({v.name for v in variants}) != len(variants):
        raise BoneScreenError("give one or more variants with distinct names")
    plan.check()
    n_first_wanted, n_real = plan.batch_counts()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BoneScreenError("is a file, not a folder", out)
    # everything that can fail on the user's input is read before the generator processes start
    models, optims, gens = {}, {}, {}
    for v in variants:
        if v.init:
            m, _ = load_model(v.init, device)
            if m.model_name != "msnet-small":
                raise BoneScreenError(f"variant {v.name}: {v.init} holds a {m.model_name}, not msnet-small")
        else:
            torch.manual_seed(plan.seed)
            m = create_model("msnet-small").to(device)
        m.train()
        models[v.name] = m.to(memory_format=torch.channels_last)
        optims[v.name] = torch.optim.Adam(m.parameters(), lr=v.lr)
        gens[v.name] = torch.Generator().manual_seed(plan.seed + zlib.crc32(v.name.encode()))
    gen = torch.Generator().manual_seed(plan.seed)
    real = None
    if plan.labelled:
        from ..data.datasets import LabelledSlices

        slices = LabelledSlices(list(plan.labelled), slices_per_case=100000, augment=False)
        for note in slices.notes:  # CT labelled for some vertebrae only: which slices are trained on
            print(f"note: {note}", flush=True)
        real = GpuPool(len(slices.images), 512, device)
        real.add(slices.images, slices.marks)
    realistic = GpuPool(plan.capacity, 512, device)
    first = GpuPool(max(64, plan.capacity // 4), 512, device)
    out.mkdir(parents=True, exist_ok=True)
    amp = torch.bfloat16 if device.type == "cuda" else None
    log = {"plan": _plan_json(plan), "variants": [vars(v) for v in variants]}
    if real is not None:
        log["labelled_slices"] = real.count
    log.update(device=str(device), events=[], snapshots=[])

    t0 = time.time()
    deadline = t0 + plan.budget_s
    arrived: queue.Queue = queue.Queue()
    # workers start from a fork server: no copy of this process's CUDA state
    pool = ProcessPoolExecutor(plan.workers, mp_context=multiprocessing.get_context("forkserver"))
    jobs, val_jobs = _submit(pool, plan, arrived)

    def drain() -> None:
        while True:
            try:
                kind, (images, marks) = arrived.get_nowait()
            except queue.Empty:
                return
            (first if kind == "first" else realistic).add(images, marks)

    # the generator processes are stopped however the run ends (an error here would otherwise wait on them)
    try:
        last_report = t0
        while realistic.count < 2 * plan.batch_size:
            time.sleep(0.5)
            drain()
            now = time.time()
            if now > deadline - 0.25 * plan.budget_s:
                raise BoneScreenError(
                    f"only {realistic.added} slices drawn after {now - t0:.0f} s with {plan.workers} workers: "
                    "too few cores for this budget"
                )
            if now - last_report > 15:
                last_report = now
                print(json.dumps({"t_s": round(now - t0, 1), "waiting_for_slices": realistic.added}), flush=True)
        start = time.time()
        log["first_batch_after_s"] = round(start - t0, 1)
        snapshots = sorted(plan.snapshots)
        step, losses, last_report = 0, {v.name: [] for v in variants}, start
        while snapshots:
            drain()
            frac = (time.time() - start) / (deadline - start)
            n_first = n_first_wanted if first.count else 0
            parts = [realistic.sample(plan.batch_size - n_first - n_real, gen)]
            if n_first:
                parts.append(first.sample(n_first, gen))
            if n_real:
                parts.append(real.sample(n_real, gen))
            images = torch.cat([p[0] for p in parts])
            marks = torch.cat([p[1] for p in parts])
            for v in variants:
                x, y = augment_batch(images, marks, gens[v.name], v.intensity)
                opt = optims[v.name]
                for group in opt.param_groups:
                    group["lr"] = time_lr(min(frac, 1.0), v.lr)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    pred = models[v.name](x.contiguous(memory_format=torch.channels_last)).float()
                keep = (y != MARK_IGNORE).float()
                loss = ((pred - y).abs() * keep).sum() / keep.sum().clamp(min=1.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses[v.name].append(float(loss.detach()))
            step += 1
            now = time.time()
            if now - last_report > 30 or step == 1:
                last_report = now
                event = {
                    "t_s": round(now - t0, 1),
                    "step": step,
                    "realistic_slices": realistic.added,
                    "first_slices": first.added,
                    "loss": {k: round(float(np.mean(v[-50:])), 4) for k, v in losses.items()},
                }
                log["events"].append(event)
                print(json.dumps(event), flush=True)
            if frac >= snapshots[0]:
                pct = round(snapshots.pop(0) * 100)
                _snapshot(
                    out,
                    models,
                    {v.name: v for v in variants},
                    realistic,
                    first,
                    gen,
                    device,
                    plan,
                    val_jobs,
                    log,
                    pct,
                    step,
                    now - t0,
                )
        log["total_s"] = round(time.time() - t0, 1)
        _write_log(out, log)
        return log
    finally:
        _stop(pool, jobs)


def _submit(pool: ProcessPoolExecutor, plan: StreamPlan, arrived: queue.Queue) -> tuple[list[Future], list[Future]]:
    """Queue the generator jobs; each training job's slices go to ``arrived``. Returns (all jobs, validation jobs).

    The queue is served in order: training jobs first (two rounds of every worker), then the validation
    set, then training jobs to the end, so that few cores still start training soon.
    """

    def deliver(kind: str):
        def done(f: Future) -> None:
            if not f.cancelled() and f.exception() is None:
                arrived.put((kind, f.result()))

        return done

    jobs: list[Future] = []
    val_jobs: list[Future] = []
    scene, case = 0, 0
    for k in range(4000):
        if k == 2 * plan.workers:
            val_jobs = [
                pool.submit(_realistic_job, plan.seed + 1, s, plan.scenes_per_job)
                for s in range(0, plan.val_scenes, plan.scenes_per_job)
            ]
            val_jobs += [pool.submit(_first_phantom_job, plan.first_seed + 1, i, 12) for i in range(plan.val_cases)]
        if k % 4 == 3:
            f = pool.submit(_first_phantom_job, plan.first_seed, case, plan.first_per_case)
            f.add_done_callback(deliver("first"))
            case += 1
        else:
            f = pool.submit(_realistic_job, plan.seed, scene, plan.scenes_per_job)
            f.add_done_callback(deliver("realistic"))
            scene += plan.scenes_per_job
        jobs.append(f)
    return jobs + val_jobs, val_jobs


def _stop(pool: ProcessPoolExecutor, jobs: list[Future]) -> None:
    """Cancel the jobs not started and end the generator processes (their slices are no longer needed)."""
    for f in jobs:
        f.cancel()
    for p in list(getattr(pool, "_processes", {}).values()):
        p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _snapshot(out, models, variants, realistic, first, gen, device, plan, val_jobs, log, pct, step, t) -> None:
    def batches():
        for _ in range(25):
            x, y = realistic.sample(plan.batch_size, gen)
            yield x.float().div(255.0).unsqueeze(1), y

    def finished(fs: list[Future]) -> list:
        return [f.result() for f in fs if f.done() and not f.cancelled() and f.exception() is None]

    n_real = math.ceil(plan.val_scenes / plan.scenes_per_job)
    real_val, first_val = finished(val_jobs[:n_real]), finished(val_jobs[n_real:])
    entry = {"percent": pct, "step": step, "t_s": round(t, 1), "slices_seen": step * plan.batch_size, "val": {}}
    entry["val_jobs_done"] = {"realistic": len(real_val), "first_phantom": len(first_val)}
    for name, model in models.items():
        recalibrate_batchnorm(model, batches(), device)
        _save(model, out / f"{name}_{pct}.safetensors", variants[name], plan, entry)
        scores = {}
        for key, done in (("realistic", real_val), ("first_phantom", first_val)):
            if done:
                scores[key] = _dice(model, *(np.concatenate(a) for a in zip(*done, strict=True)), device)
        entry["val"][name] = {k: round(v, 4) for k, v in scores.items()}
    log["snapshots"].append(entry)
    print(json.dumps(entry), flush=True)
    _write_log(out, log)


def _write_log(out: Path, log: dict) -> None:
    write_text_atomic(out / "stream_log.json", json.dumps(log, indent=1))
