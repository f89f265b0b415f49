"""Training loops for MS-Net and BCC-Net as generators of progress events.

A GUI or the command line iterates over :func:`train` and shows each
:class:`TrainEvent`; stopping the iteration (``generator.close()``) cancels the
run between steps. After each epoch the weights are written atomically, with
the optimizer state, so an interrupted run resumes from its last epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import __version__
from ..checkpoint import file_sha256, load_model, load_training_state, read_meta, save_checkpoint, weights_paths
from ..device import autocast_dtype, resolve_device
from ..errors import BoneScreenError, check_choice, check_number
from ..metrics import dice_score
from ..nets.names import model_names
from ..nets.registry import create_model, model_task
from ..preprocess import MARK_IGNORE
from .schedules import (
    CLS_BASE_LR,
    CLS_WEIGHT_DECAY,
    SEG_BASE_LR,
    SEG_FINE_TUNE_LR,
    classification_lr,
    segmentation_lr,
)


@dataclass
class TrainConfig:
    """What a training run does.

    Parameters
    ----------
    model : str
        A name from :func:`~bonescreen.nets.model_names`.
    model_kwargs : dict
        Extra builder arguments (for example ``{"width": 0.25}``).
    epochs : int
        Epochs (paper: 150 for MS-Net).
    batch_size : int
        Batch size (paper: 64).
    lr : float, optional
        Base learning rate; default the paper's (0.002 Adam / 0.01 SGD).
    seed : int
        Seeds weights, shuffling and augmentation: a CPU run repeats exactly.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16).
    workers : int
        DataLoader worker processes.
    init_weights : str, optional
        Weights (folder or .safetensors) to start from instead of a random start (fine-tuning);
        ignored when resuming.
    """

    model: str = "bccnet"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    workers: int = 0
    init_weights: str | None = None

    def __post_init__(self) -> None:
        check_choice("model", self.model, model_names())
        check_number("epochs", self.epochs, 1, whole=True)
        check_number("batch_size", self.batch_size, 1, whole=True)
        if self.lr is not None:
            check_number("lr", self.lr, 0.0, low_open=True)
        check_number("workers", self.workers, 0, whole=True)
        resolve_device(self.device)  # a device this machine has


def widen_input(one_channel: dict, target: dict) -> dict:
    """Weights of a one-channel MS-Net for its three-channel (2.5-D) twin.

    The first convolution's kernel goes to the middle channel (the slice itself) and the
    neighbours' kernels start at zero, so the widened network marks exactly as the
    one-channel one did until training teaches it to use the slices around.
    """
    out = dict(one_channel)
    for key, value in target.items():
        if key in one_channel and one_channel[key].shape != value.shape and value.ndim == 4:
            w = torch.zeros_like(value)
            w[:, 1:2] = one_channel[key]
            out[key] = w
    return out


@dataclass
class TrainEvent:
    """One progress report: ``kind`` is ``step``, ``epoch`` or ``done``."""

    kind: str
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    loss: float
    lr: float
    metrics: dict = field(default_factory=dict)
    checkpoint: str | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may draw from the legacy global RNG
    torch.manual_seed(seed)


def _set_epoch(dataset: Dataset, epoch: int) -> None:
    hook = getattr(dataset, "set_epoch", None)
    if callable(hook):
        hook(epoch)


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int, sampler=None) -> DataLoader:
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=gen,
        num_workers=workers,
        drop_last=False,
        persistent_workers=False,
    )


def _loss(task: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = net(x).float()
    if task == "segmentation":
        # L1 (MAE) between the mark image and its label, as the paper trains MS-Net, over the pixels
        # whose label a slice can decide (MARK_IGNORE: discs and partial-volume edges of the phantom)
        y = y.float()
        keep = (y != MARK_IGNORE).float()
        return ((out - y).abs() * keep).sum() / keep.sum().clamp(min=1.0)
    return F.cross_entropy(out, y.long())


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader, device: torch.device, max_batches: int = 50) -> None:
    """Re-estimate BatchNorm statistics at the final weights of an epoch, with dropout off.

    Two things make the running statistics gathered during training wrong at
    inference: with dropout after every convolution (BCC-Net, as the paper),
    they include dropout's noise ("variance shift"); and with a high learning
    rate and tiny bottleneck maps (MS-Net's 2x2), the moving average lags the
    changing weights. Either way eval-mode outputs drift (measured: BCC-Net
    validation accuracy 0.33 -> 0.81, MS-Net Dice 0.20 -> 0.93 after this pass).
    A pass over training batches in train mode for BatchNorm and eval mode for
    dropout, with a cumulative average, fixes the statistics.
    """
    was_training = model.training
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the pass
        m.train()
    for i, (x, _) in enumerate(loader):
        if i >= max_batches:
            break
        model(x.to(device))
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


@torch.inference_mode()
def evaluate_model(task: str, model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 16) -> dict:
    """Validation figures: mean foreground Dice (segmentation) or accuracy (classification).

    Raises
    ------
    BoneScreenError
        If ``task`` is neither ``segmentation`` nor ``classification``.
    """
    check_choice("task", task, ("segmentation", "classification"))
    was_training = model.training
    model.eval()
    scores: list[float] = []
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        out = model(x.to(device)).float().cpu()
        if task == "segmentation":
            for p, t in zip(out.numpy() > 0.5, y.numpy(), strict=True):
                d = dice_score(p & (t != MARK_IGNORE), t == 1)
                if not math.isnan(d):
                    scores.append(d)
        else:
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
    model.train(was_training)
    if task == "segmentation":
        return {"val_dice": float(np.mean(scores)) if scores else float("nan"), "val_images": len(dataset)}
    return {"val_accuracy": correct / max(total, 1), "val_images": total}


def _recorded_base_lr(out: str | os.PathLike) -> float | None:
    """The base learning rate the run in ``out`` started at (its model.json), or None where none is recorded (the
    resume itself then says what is missing)."""
    try:
        value = read_meta(out).get("training", {}).get("base_lr")
    except BoneScreenError:
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def train(
    config: TrainConfig,
    train_set: Dataset,
    out: str | os.PathLike,
    val_set: Dataset | None = None,
    resume: bool = False,
    meta: dict | None = None,
    distributed: bool = False,
) -> Iterator[TrainEvent]:
    """Train a network with the paper's schedule for its task, yielding progress.

    Parameters
    ----------
    config : TrainConfig
        Model, epochs, batch size, seed, device.
    train_set : Dataset
        Yields ``(x, y)``: (1, H, W) float image and (1, H, W) mark image for
        segmentation, or (1, 224, 224) crop and class index for classification.
        A ``set_epoch(epoch)`` method, if present, is called before each epoch.
    out : str or PathLike
        Weights folder (``model.safetensors``, ``model.json``, training state).
    val_set : Dataset, optional
        Evaluated after each epoch; its figures go into the checkpoint.
    resume : bool
        Continue from the training state in ``out``.
    meta : dict, optional
        Extra checkpoint fields (``preprocessing``, ``data``, ``input_size``).
    distributed : bool
        Wrap in DistributedDataParallel (process group already initialised);
        only rank 0 writes checkpoints.

    Yields
    ------
    TrainEvent
        ``step`` after each optimizer step, ``epoch`` after each checkpoint,
        ``done`` at the end.
    """
    task = model_task(config.model)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model = create_model(config.model, **config.model_kwargs).to(device)
    # resumed without --lr: the rate the run started at (review, helper-112: a fine-tune resumed without --init-weights
    # went on at the from-scratch 0.002)
    resumed_lr = _recorded_base_lr(out) if resume and config.lr is None else None
    if task == "segmentation":
        base_lr = config.lr or resumed_lr or (SEG_FINE_TUNE_LR if config.init_weights else SEG_BASE_LR)
        optimizer = torch.optim.Adam(model.parameters(), lr=base_lr, betas=(0.9, 0.999))
    else:
        base_lr = config.lr or resumed_lr or CLS_BASE_LR
        optimizer = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9, weight_decay=CLS_WEIGHT_DECAY)

    start_epoch, step = 0, 0
    if config.init_weights and not resume:
        start, start_meta = load_model(config.init_weights, device)
        wanted = getattr(model, "config", dict)()
        given = start_meta.get("config", {})
        widened = given == {**wanted, "in_channels": 1} and wanted.get("in_channels") == 3
        if start_meta["model"] != config.model or (given != wanted and not widened):
            raise BoneScreenError(
                f"weights are a {start_meta['model']} {start_meta.get('config')}, not the {config.model} being trained",
                config.init_weights,
            )
        model.load_state_dict(widen_input(start.state_dict(), model.state_dict()) if widened else start.state_dict())
    if resume:
        state = load_training_state(out, model, optimizer)
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])

    rank, world = 0, 1
    net: nn.Module = model
    sampler = None
    if distributed:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data.distributed import DistributedSampler

        rank, world = dist.get_rank(), dist.get_world_size()
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)

    amp_dtype = autocast_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    steps_per_epoch = math.ceil((len(train_set) // world if distributed else len(train_set)) / config.batch_size)
    start_file = weights_paths(config.init_weights)[0] if config.init_weights else None
    base_meta = {
        "task": task,
        "training": {
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "base_lr": base_lr,
            "seed": config.seed,
            "optimizer": type(optimizer).__name__,
            "schedule": "paper: constant 2/3 then linear to 0"
            if task == "segmentation"
            else "paper: base*(1+0.006*iter)^-0.98",
            "device": str(device),
            "world_size": world,
            # where the weights started and which (helper-83: a relative path and no digest)
            "init_weights": str(start_file.resolve()) if start_file else None,
            "init_weights_sha256": file_sha256(start_file) if start_file else None,
            "bonescreen_version": __version__,
        },
        **(meta or {}),
    }
    for epoch in range(start_epoch, config.epochs):
        # each epoch's randomness (dropout, shuffling, augmentation) depends only on (seed, epoch),
        # so a resumed run continues exactly as an uninterrupted one
        epoch_seed = config.seed * 1000 + epoch
        torch.manual_seed(epoch_seed)
        _set_epoch(train_set, epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        loader = _loader(train_set, config.batch_size, True, epoch_seed, config.workers, sampler)
        running, seen = 0.0, 0
        for x, y in loader:
            lr = (
                segmentation_lr(epoch, config.epochs, base_lr)
                if task == "segmentation"
                else classification_lr(step, base_lr)
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with ctx:
                loss = _loss(task, net, x, y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            running += loss_value * len(x)
            seen += len(x)
            yield TrainEvent("step", epoch, config.epochs, step, steps_per_epoch, loss_value, lr)
        if _has_batchnorm(model):
            stats_loader = _loader(train_set, config.batch_size, True, epoch_seed + 7, config.workers, sampler)
            recalibrate_batchnorm(model, stats_loader, device)
        metrics = {"train_loss": running / max(seen, 1)}
        if val_set is not None and rank == 0:
            metrics.update(evaluate_model(task, model, val_set, device))
        path = None
        if rank == 0:
            path = save_checkpoint(
                out,
                model,
                {**base_meta, "epoch": epoch, "metrics": metrics},
                optimizer=optimizer,
                training_state={"epoch": epoch, "step": step, "seed": config.seed},
            )
        yield TrainEvent(
            "epoch",
            epoch,
            config.epochs,
            step,
            steps_per_epoch,
            metrics["train_loss"],
            lr,
            metrics,
            str(path) if path else None,
        )
    yield TrainEvent(
        "done",
        config.epochs - 1,
        config.epochs,
        step,
        steps_per_epoch,
        float("nan"),
        0.0,
        {},
        str(weights_paths(out)[0]),
    )
