"""The ``bonescreen`` command line (also ``python -m bonescreen``)."""

from __future__ import annotations

import argparse
import atexit
import errno
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .allocator import tune_host_memory
from .console_bar import progress_bar
from .errors import BoneScreenError, check_number
from .hu import MAX_CONTRAST_OFFSET_HU, HUThresholds
from .label_schemes import SCHEME_NAMES
from .pipeline.progress import Cancelled

if TYPE_CHECKING:
    from .atomic import HeldFolder


def user_path(text: str) -> Path:
    """A path argument: ``~`` expanded (the shell leaves it in ``--out=~/x``: a folder named "~" was made, helper-92),
    an empty one refused (``--out ''`` wrote into the current folder, ``screen ''`` read it)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(os.path.expanduser(text))


#: System errors on a path the user gave (a name too long, a folder that is a file ...): bad input, exit code 2.
_PATH_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP}
)
#: System errors of a full or failing disk while writing: an output failed, exit code 1.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def _stage_bars(preface: str | None = None):
    """A progress callback ``(stage, done, total)`` drawing one bar per stage; a new stage closes the last bar.

    ``preface`` is printed (to stderr) before the first bar, once the work has started.
    """
    bars = {}
    pending = [preface] if preface else []

    def report(stage: str, done: int, total: int) -> None:
        while pending:
            print(f"bonescreen: {pending.pop()}", file=sys.stderr)
        if stage not in bars:
            for other in bars.values():
                other.close()
            bars.clear()
            bars[stage] = progress_bar(stage, total)
        bars[stage].n = done
        bars[stage].refresh()
        if done >= total:
            bars.pop(stage).close()

    return report


def _loader_progress(desc: str):
    """A ``(done, total)`` callback drawing one bar called ``desc``."""
    report = _stage_bars()
    return lambda done, total: report(desc, done, total)


def _class_weights(text: str | None):
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("class weights are three numbers, e.g. 1,1,2") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError("class weights are three numbers, e.g. 1,1,2")
    return values


def cmd_phantom(args: argparse.Namespace) -> int:
    from .phantom import PhantomConfig
    from .phantom.realistic import RealisticConfig
    from .phantom.write import write_phantom_set

    realistic_only = {"--extent": args.extent, "--pixel": args.pixel, "--findings": args.findings}
    given = [name for name, value in realistic_only.items() if value is not None]
    if given and not args.realistic:
        raise BoneScreenError(f"{', '.join(given)} apply to --realistic cases only")
    if args.realistic:
        config = RealisticConfig(
            extent=args.extent or "abdomen-pelvis",
            slice_mm=args.thickness or 3.0,
            pixel_mm=args.pixel,
            class_weights=args.class_weights,
            findings=args.findings or "random",
        )
    else:
        config = PhantomConfig(
            class_weights=args.class_weights,
            contrast_probability=args.contrast_probability,
            thickness=args.thickness,
            include_t12=not args.no_t12,
            include_sacrum=not args.no_sacrum,
        )
    bar = progress_bar("phantom cases", args.cases)
    table = write_phantom_set(args.out, args.cases, args.seed, args.format, config, lambda d, t: bar.update(1))
    bar.close()
    print(f"wrote {args.cases} cases and {table}")
    return 0


def cmd_synth_slices(args: argparse.Namespace) -> int:
    from .phantom.slices import write_slice_shards

    bar = progress_bar("realistic slices (shards)", -(-args.scenes // args.scenes_per_shard))
    paths = write_slice_shards(
        args.out,
        args.scenes,
        args.seed,
        args.per_scene,
        args.scenes_per_shard,
        args.workers,
        lambda d, t: bar.update(1),
        context=args.context,
    )
    bar.close()
    print(f"{len(paths)} shards of {args.per_scene * args.scenes_per_shard} slices in {args.out}")
    return 0


def _run_as_bonescreen() -> bool:
    """Whether this process is the ``bonescreen`` command (the script or ``python -m bonescreen``)."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return first is not None and (first.name == "bonescreen" or first.parts[-2:] == ("bonescreen", "__main__.py"))


def _train(args: argparse.Namespace, task: str) -> int:
    from torch.utils.data import ConcatDataset

    from .checkpoint import read_meta
    from .data import (
        ClassificationCrops,
        LabelledSlices,
        SegmentationSlices,
        SliceShards,
        load_case_set,
        split_by_case,
    )
    from .data.labelled import find_labelled, leave_out, unpaired
    from .preprocess import CROP_SIZE, preprocessing_config
    from .train import TrainConfig, train

    labelled = []  # the user's labelled CT, found (and any left out) before the case set loads: a typo fails fast
    if task == "segmentation":
        options = (("--leave-out", args.leave_out), ("--labelled-repeat", args.labelled_repeat != 1))
        given = [name for name, on in options if on]
        if given and not args.labelled:
            raise BoneScreenError(f"{' and '.join(given)} apply to --labelled CT: give --labelled too")
        labelled = [c for folder in args.labelled for c in find_labelled(folder, args.layout, args.label_scheme)]
        for folder in args.labelled:  # (helper-83: a CT without its labels was left out without a word)
            for line in unpaired(folder, args.layout):
                print(f"bonescreen: note: {line.removesuffix(': not evaluated')}: not trained on", file=sys.stderr)
        if labelled:
            labelled = leave_out(labelled, args.leave_out, args.labelled[0] if len(args.labelled) == 1 else None)
    if task == "segmentation" and getattr(args, "init_weights", None):
        # before the data load (helper-83: a mismatch was said after 20 s of loading); the loop checks the rest
        start = read_meta(args.init_weights)["model"]
        if start != args.model:
            raise BoneScreenError(
                f"weights are a {start}, not the {args.model} being trained (--model {start}, or other weights)",
                args.init_weights,
            )
    records = load_case_set(args.data)
    for extra in getattr(args, "also", None) or []:
        records += load_case_set(extra)
    energy_normalized = task == "classification" and args.input == "energy-normalized"
    train_cases, val_cases = split_by_case(records, args.val_fraction, args.seed)
    if not val_cases:
        print(
            f"bonescreen: note: no validation cases ({len(records)} cases at --val-fraction {args.val_fraction:g}): "
            "no validation Dice or accuracy per epoch, and BatchNorm is not checked on held-out data",
            file=sys.stderr,
        )
    if labelled and not getattr(args, "init_weights", None):
        print(
            "bonescreen: note: training from random weights; to fine-tune the bundled MS-Net on your labelled CT give "
            "--init-weights with its weights (bonescreen/weights/msnet-small.safetensors): it is then fine-tuned at a "
            "learning rate of 1e-4, as the bundled one was (--lr sets another)",
            file=sys.stderr,
        )
    labelled_notes: list[str] = []  # what the labelled CT's labels hold and which slices were trained on
    if task == "segmentation":
        model_kwargs = {"width": args.width} if args.width else {}
        if args.context:
            model_kwargs["in_channels"] = 3

        def make(recs, aug, name):
            cases = SegmentationSlices(
                recs,
                args.slices_per_case,
                augment=aug,
                seed=args.seed,
                progress=_loader_progress(name),
                context=args.context,
            )
            if not aug or not (args.slices or args.labelled):
                return cases
            # the realistic phantom's slices and the user's labelled CT beside the case set's
            # (validation stays on the case set)
            parts = [cases]
            if args.slices:
                parts.append(SliceShards(args.slices, augment=True, seed=args.seed, context=args.context))
            if labelled:
                real = LabelledSlices(
                    labelled,
                    args.slices_per_case * 2,
                    augment=True,
                    seed=args.seed,
                    context=args.context,
                    repeat=args.labelled_repeat,
                )
                for note in real.notes:  # CT labelled for some vertebrae only: which slices were trained on
                    print(f"bonescreen: note: {note}", file=sys.stderr)
                labelled_notes.extend(real.notes)
                parts.append(real)
            return ConcatDataset(parts)

        name, input_size = args.model, 512
    else:
        model_kwargs = {}
        make = lambda recs, aug, name: ClassificationCrops(  # noqa: E731
            recs,
            args.crops_per_case,
            augment=aug,
            seed=args.seed,
            progress=_loader_progress(name),
            energy_normalized=energy_normalized,
        )
        name, input_size = args.arch, CROP_SIZE
    train_set = make(train_cases, True, "loading training cases")
    val_set = make(val_cases, False, "loading validation cases") if val_cases else None
    meta = {
        "input_size": input_size,
        "preprocessing": preprocessing_config(energy_normalized)[task],
        "data": {
            "root": str(Path(args.data).resolve()),
            "also": [str(Path(p).resolve()) for p in getattr(args, "also", None) or []],
            "train_cases": len(train_cases),
            "val_cases": len(val_cases),
            "val_case_ids": [r.case_id for r in val_cases],
            "train_samples_per_epoch": len(train_set),
            "realistic_slices": [str(Path(p).resolve()) for p in getattr(args, "slices", None) or []],
            "labelled_ct": [str(Path(p).resolve()) for p in getattr(args, "labelled", None) or []],
            "labelled_left_out": list(getattr(args, "leave_out", None) or []),
            # the labelled CT trained on, after those left out or skipped (helper-83: not recorded)
            "labelled_cases": [{"name": c.name, "image": str(Path(c.image).resolve())} for c in labelled],
            "labelled_repeat": getattr(args, "labelled_repeat", 1),
            # (helper-86: which CT were partial and which of their slices were trained on was printed only)
            "labelled_notes": labelled_notes,
            "split": f"by case, stratified by class, val fraction {args.val_fraction}, seed {args.seed}",
        },
        "command": "bonescreen " + " ".join(sys.argv[1:]) if _run_as_bonescreen() else None,
    }
    distributed, device, rank = _init_distributed(args.device)
    config = TrainConfig(
        name,
        model_kwargs,
        args.epochs,
        args.batch_size,
        args.lr,
        args.seed,
        device,
        workers=args.workers,
        init_weights=str(args.init_weights) if getattr(args, "init_weights", None) else None,
    )
    events = train(config, train_set, args.out, val_set=val_set, resume=args.resume, meta=meta, distributed=distributed)
    try:
        _show_training(events, quiet=rank != 0)
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


def _init_distributed(device: str) -> tuple[bool, str, int]:
    """Under torchrun (WORLD_SIZE > 1): join the process group (NCCL on CUDA, else gloo); pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False, device, 0
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    elif device == "auto":
        device = "cpu"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return True, device, dist.get_rank()


def _show_training(events, quiet: bool = False) -> None:
    bar = None
    for event in events:
        if quiet:
            continue
        if event.kind == "step":
            if bar is None:
                bar = progress_bar(f"epoch {event.epoch + 1}/{event.epochs}", event.steps_per_epoch)
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}")
        elif event.kind == "epoch":
            if bar is not None:
                bar.close()
                bar = None
            figures = ", ".join(f"{k} {v:.4f}" for k, v in event.metrics.items() if isinstance(v, float))
            print(f"epoch {event.epoch + 1}/{event.epochs}: {figures}", file=sys.stderr)
        elif event.kind == "done":
            print(f"weights written to {event.checkpoint}")


def _evaluate_labelled(args: argparse.Namespace) -> int:
    """``evaluate DATA --layout L``: MS-Net's mark and the level names on a folder of the user's labelled CT."""
    import json

    from .atomic import write_text_atomic
    from .data.labelled import find_labelled, unpaired
    from .labelled_eval import evaluate_labelled_case, found_text, mean_dice, mean_dice_text, row_lines, scored_found
    from .pipeline import Screener

    if args.label_scheme and args.layout != "nnunet":  # (helper-70: ignored without a word)
        print(
            f"note: --label-scheme applies to an nnunet folder; a {args.layout} folder carries its tool's own ids",
            file=sys.stderr,
        )
    cases = find_labelled(args.data, args.layout, args.label_scheme or "verse")
    left = unpaired(args.data, args.layout)
    for line in left:
        print(line, file=sys.stderr)
    screener = Screener(seg_weights=args.seg_weights, device=args.device)
    screener.model("segmentation")  # bad weights or an absent device: one line, before any scan
    rows, failed = [], {}
    for case in cases:
        try:
            row = evaluate_labelled_case(screener, case)
        except BoneScreenError as exc:  # one unreadable scan does not lose the others
            failed[case.name] = str(exc)
            print(f"{case.name}: skipped: {exc}", file=sys.stderr)
            continue
        rows.append({k: v for k, v in row.items() if not k.startswith("_")})
        scope, each = row_lines(row)
        print(
            f"{row['case']}: Dice {row['dice']:.3f}{scope}; "
            f"{row['named_right']} of {len(scored_found(row))} vertebrae found named "
            f"as given ({found_text(row)}; given {', '.join(row['given'])}); "
            # (helper-70: "7 of 7 named as given" did not say that T11 was not found; real_ct.py did)
            f"{row['given_found']} of {len(row['given'])} given vertebrae found as vertebrae of their own; naming "
            f"{'certain' if row['certain'] else 'flagged uncertain'}"
        )
        print(f"    {each}")
        for note in row["label_notes"]:
            print(f"    labels: {note}")
    full, some = mean_dice(rows)
    summary = {
        "data": str(Path(args.data).resolve()),
        "layout": args.layout,
        "models": screener.models(),
        "mean_dice": full,  # the fully labelled scans
        "mean_dice_some_vertebrae": some,  # scans labelled for some vertebrae only
        "cases": rows,
        "failed": failed,
        "unpaired": left,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "metrics.json", json.dumps(summary, indent=2, default=str) + "\n")
    if rows:
        print(f"{mean_dice_text(rows)}; wrote {args.out / 'metrics.json'}")
    else:  # (helper-86: every CT skipped, metrics.json written without a word)
        print(f"no CT scored ({len(failed)} skipped: their reasons above); wrote {args.out / 'metrics.json'}")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .data import load_case_set
    from .device import resolve_device
    from .evaluate import evaluate_classification, evaluate_segmentation, write_evaluation
    from .output_folder import check_output_folder
    from .preprocess import trained_energy_normalized

    check_output_folder(args.out)  # before any scan (helper-70: a file as --out lost a whole evaluation at the end)
    if args.layout:
        return _evaluate_labelled(args)
    records = load_case_set(args.data)
    if args.pipeline:
        return _evaluate_pipeline(args, records)
    if not args.seg_weights and not args.cls_weights:
        raise BoneScreenError("give --seg-weights and/or --cls-weights to evaluate (or --pipeline)")
    device = resolve_device(args.device)
    result: dict = {"data": str(Path(args.data).resolve()), "cases": len(records), "device": str(device), "models": {}}
    runs = {
        "segmentation": (
            args.seg_weights,
            lambda model, bar, meta: evaluate_segmentation(model, records, device, args.slices_per_case, progress=bar),
        ),
        "classification": (
            args.cls_weights,
            lambda model, bar, meta: evaluate_classification(
                model,
                records,
                device,
                args.crops_per_case,
                seed=args.seed,
                progress=bar,
                energy_normalized=trained_energy_normalized(meta),
            ),
        ),
    }
    bars = _stage_bars()
    for task, (weights, evaluate) in runs.items():
        if not weights:
            continue
        model, meta = load_model(weights, device)
        result["models"][task] = {"name": meta["model"], "sha256": meta["sha256"]}
        result[task] = evaluate(model, lambda s, d, t, name=f"{task} cases": bars(name, d, t), meta)
    path = write_evaluation(result, args.out)
    if "segmentation" in result:
        pi = result["segmentation"]["per_image"]
        print(
            f"segmentation: Dice {pi['dice']['mean']:.4f}, IoU {pi['iou']['mean']:.4f}, PA {pi['pa']['mean']:.4f} "
            f"over {pi['dice']['n']} slices with vertebra"
        )
    if "classification" in result:
        pc = result["classification"]["per_crop"]
        print(f"classification: accuracy {pc['accuracy']:.4f}, macro AUC {pc['macro_auc']:.4f} over {pc['n']} crops")
    print(f"metrics written to {path}")
    return 0


def _whole_number(minimum: int):
    """argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _number(low: float, high: float = float("inf"), *, with_low: bool = False, with_high: bool = False):
    """argparse type: a number between ``low`` and ``high``, each bound included when ``with_low``/``with_high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        above = value >= low if with_low else value > low
        below = value <= high if with_high else value < high
        if not (above and below):  # NaN fails both
            if low == -math.inf and high == math.inf:
                raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
            lower = f"{'at least' if with_low else 'above'} {low:g}"
            upper = "" if high == float("inf") else f" and {'at most' if with_high else 'below'} {high:g}"
            raise argparse.ArgumentTypeError(f"expected a number {lower}{upper}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


_positive_float = _number(0.0)

_finite = _number(-math.inf)  # not nan or inf, which would pass a threshold through every comparison
_probability = _number(0.0, 1.0, with_low=True, with_high=True)


def _hu_offset(text: str) -> float:
    """argparse type: an offset for stored values (:data:`~bonescreen.io.hu_scale.MAX_HU_OFFSET`)."""
    from .io.hu_scale import MAX_HU_OFFSET

    return _number(-MAX_HU_OFFSET, MAX_HU_OFFSET, with_low=True, with_high=True)(text)


def _device(text: str) -> str:
    """argparse type: a device this machine has (``auto``, ``cpu``, ``cuda:N``, ``mps``)."""
    if text.strip().lower() in ("auto", "cpu"):  # always valid; torch is not imported to parse them
        return text
    from .device import resolve_device

    try:
        resolve_device(text)
    except BoneScreenError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
    return text


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inference")
    g.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="autocast type (auto: bf16 on GPUs, fp16 where they lack it, bf16 on CPUs with bf16 instructions, "
        "else fp32)",
    )
    g.add_argument(
        "--batch-size", type=_positive_int, default=None, help="slices per MS-Net pass (default: 4 on CPU, 8 on GPU)"
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the networks (slow first pass; long runs)")


def _axis_codes(text: str) -> str:
    """argparse type: three NIfTI axis codes, one of R/L, A/P, S/I each."""
    from .io.nifti import affine_from_codes

    try:
        affine_from_codes(text, (1, 1, 1))
    except BoneScreenError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
    return text.upper()


def _add_reading_options(p: argparse.ArgumentParser, whose: str = "") -> None:
    """The HU thresholds and how the CT is read: the same for ``screen`` and ``batch``."""
    p.add_argument("--osteoporosis-hu", type=_finite, default=110.0, help="trabecular HU at or below: osteoporosis")
    p.add_argument("--normal-hu", type=_finite, default=160.0, help="trabecular HU above: normal")
    p.add_argument("--contrast-offset", type=_finite, default=0.0, help="HU subtracted first (e.g. 15 portal venous)")
    p.add_argument(
        "--hu-offset",
        type=_hu_offset,
        default=None,
        help=f"added to every value as read{whose}, for stored values without their rescale (e.g. -1024)",
    )
    p.add_argument(
        "--orientation",
        type=_axis_codes,
        default=None,
        help=f"axis codes of a NIfTI without qform/sform{whose} (e.g. LPS, RAS: where each array axis runs towards)",
    )


#: The dask.distributed transports a scheduler address may name.
SCHEDULER_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def _scheduler_address(text: str) -> str:
    """``--scheduler``: ``[SCHEME://]HOST:PORT`` (helper-78: 'notaurl' and an http:// address gave tracebacks)."""
    scheme, sep, rest = text.strip().rpartition("://")
    wanted = "tcp://HOST:PORT (port 8786 by default)"
    if sep and scheme in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{text!r} is a web address (a dashboard?): give the scheduler's, {wanted}")
    host, colon, port = rest.rpartition(":")
    known = not sep or scheme in SCHEDULER_SCHEMES
    if not (known and colon and host and port.isdigit() and 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a dask scheduler address: give {wanted}; transports {', '.join(SCHEDULER_SCHEMES)}"
        )
    return text.strip()


def _thresholds(args: argparse.Namespace) -> HUThresholds:
    """The HU thresholds of ``--osteoporosis-hu``, ``--normal-hu`` and ``--contrast-offset``, checked in their terms."""
    if args.osteoporosis_hu >= args.normal_hu:
        raise BoneScreenError(
            f"--osteoporosis-hu ({args.osteoporosis_hu:g}) must be below --normal-hu ({args.normal_hu:g})"
        )
    # the bounds of HUThresholds, said with the options' names (helper-33: the error named contrast_offset_hu)
    check_number("--osteoporosis-hu", args.osteoporosis_hu, -1000.0, 3071.0)
    check_number("--normal-hu", args.normal_hu, -1000.0, 3071.0)
    check_number("--contrast-offset", args.contrast_offset, -MAX_CONTRAST_OFFSET_HU, MAX_CONTRAST_OFFSET_HU)
    return HUThresholds(args.osteoporosis_hu, args.normal_hu, args.contrast_offset)


def _inference_settings(args: argparse.Namespace):
    from .pipeline.inference import InferenceSettings

    return InferenceSettings(precision=args.precision, batch=args.batch_size, compile=args.compile)


def cmd_screen(args: argparse.Namespace) -> int:
    from .atomic import held_output_folder
    from .output_folder import check_screen_folder

    # before torch and the networks load: a bad --out, or one another run writes into, costs nothing (a refused run
    # took 3-7 s, the import of torch)
    check_screen_folder(args.out, args.input)
    if args.label_scheme is not None and args.labels is None:
        raise BoneScreenError("--label-scheme names the ids of --labels: give the label map with --labels")
    with held_output_folder(args.out) as held:
        return _screen_in(args, held)


def _screen_in(args: argparse.Namespace, held: HeldFolder) -> int:
    """``screen``'s work and what it prints, into the output folder ``held`` (checked and locked)."""
    from .density import vbmd_text
    from .hu import hu_as_categorized
    from .messages import headline, left_out_of_overall, no_result, status_basis, user_messages
    from .pipeline import Screener
    from .screen import screen_file

    thresholds = _thresholds(args)
    screener = Screener(args.seg_weights, args.cls_weights, args.device, thresholds, _inference_settings(args))
    bars = _stage_bars(preface=screener.device_note)  # said once the CT is read and the networks start
    result = screen_file(
        args.input,
        args.out,
        labels_path=args.labels,
        label_scheme=args.label_scheme or "bonescreen",
        progress=bars,
        screener=screener,
        hu_offset=args.hu_offset,
        orientation=args.orientation,
        series=args.series,
        held=held,
    )
    off_bone = set(result["overall"].get("labels_off_bone") or [])
    for lv in result["levels"]:
        if lv["name"] in off_bone:  # (helper-34: "L1: osteoporosis (p=0.84), -41 HU" of labels on no bone)
            print(f"{lv['name']}: labels off the bone, no figure means anything UNCERTAIN")
            continue
        hu = hu_as_categorized(lv["trabecular_hu"], thresholds) if lv["trabecular_hu"] is not None else "HU n/a"
        if lv.get("hu_category"):
            hu += f" {lv['hu_category']} (HU thresholds)"
        if lv.get("vbmd_mg_cm3") is not None:
            vbmd = vbmd_text(lv["vbmd_mg_cm3"])
            hu += f", {vbmd} +- {lv['vbmd_sd_mg_cm3']:.0f} mg/cm3 (1 SD), {lv['acr_category']} (ACR)"
        fracture = lv.get("fracture") or {}
        if fracture.get("genant_grade"):
            hu += f", Genant grade {fracture['genant_grade']} {fracture['shape']}"
        print(
            f"{lv['name']}: {lv['prediction']} (p={max(lv['probabilities'].values()):.2f}), {hu}"
            f"{' UNCERTAIN' if lv['uncertain'] else ''}"
        )
    o = result["overall"]
    if o["probabilities"] is None:
        # no overall figure: none was classified, or every level's labels are off the bone (the headline says so)
        print(headline(o)[0] if o.get("labels_off_bone") else "overall: no lumbar level classified")
    else:
        probs = " ".join(f"{k}={v:.2f}" for k, v in o["probabilities"].items())
        flag = " UNCERTAIN" if o["uncertain"] else ""
        # the two averages use different levels on purpose: say which rule chose them
        used = "+".join(o["levels_used"])
        missing = [n for n in ("L1", "L2") if n not in o["levels_used"]]
        left_out, found = o.get("left_out") or {}, {lv["name"] for lv in result["levels"]}
        missing = [
            f"{n} {'left out (the flags say why)' if n in left_out else 'not usable' if n in found else 'not found'}"
            for n in missing
        ]
        # no level usable: the levels averaged are those on bone, each flagged (review, helper-107: "so every usable
        # level" beside levels none of which is)
        none_usable = all(left_out_of_overall({"left_out": left_out}, n) for n in o["levels_used"])
        rule = "the levels on bone, none usable" if none_usable else "every usable level"
        why = f"; {' and '.join(missing)}, so {rule}" if missing else ""
        print(f"overall BCC-Net ({used}{why}): {o['prediction']} {probs}{flag}")
        if o.get("trabecular_hu") is not None:  # as the report's HU panel says it (helper-34: not printed)
            print(
                f"trabecular HU ({used}): {hu_as_categorized(o['trabecular_hu'], thresholds)}, "
                f"{o['hu_category']} (HU thresholds)"
            )
        if o.get("vbmd_mg_cm3") is not None:
            print(
                f"vBMD ({'+'.join(o['vbmd_levels_used'])}; the usable levels of L1-L4, ISCD): "
                f"{vbmd_text(o['vbmd_mg_cm3'])} +- {o['vbmd_sd_mg_cm3']:.0f} mg/cm3 (1 SD), {o['acr_category']} (ACR)"
            )
        if o.get("bone_status"):
            # the line every front end shows first (uncertain or unconfirmed as there), then its basis
            print(f"{headline(o)[0]}; basis: {status_basis(o['bone_status'])}")
        elif o.get("bone_status_withheld"):
            # the orientation looks wrong, or the series is too short to name its vertebrae: the flags say why
            print(headline(o)[0])
    for line in user_messages(result):
        print(f"  - {line}")
    print(f"results written to {args.out}")
    if no_result(result):
        # written, but no result: no lumbar level, labels off this CT, a mirrored spine (helper-38: exit 0 for labels
        # off the CT, a script could not tell); a series too short to name its vertebrae keeps its figures: exit 0
        return 1
    return 1 if result.get("output_errors") else 0  # what failed is among the lines above


def _evaluate_pipeline(args: argparse.Namespace, records) -> int:
    import json

    from .atomic import write_text_atomic
    from .evaluate import evaluate_pipeline
    from .figures import confusion_figure, roc_figure, save_figure
    from .pipeline import Screener

    screener = Screener(args.seg_weights, args.cls_weights, args.device)
    bar = progress_bar("cases", len(records))
    result = evaluate_pipeline(screener, records, lambda s, d, t: bar.update(1))
    bar.close()
    result["models"] = screener.models()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for block in ("per_level", "per_case"):
        if result[block]:
            save_figure(roc_figure(result[block].pop("_roc")), out / f"roc_{block}.png")
            save_figure(confusion_figure(result[block]["bccnet"]["confusion_matrix"]), out / f"confusion_{block}.png")
    write_text_atomic(out / "pipeline_metrics.json", json.dumps(result, indent=2, default=float) + "\n")
    seg = result["segmentation"]
    print(
        f"segmentation (lumbar vertebrae, 3-D): Dice {seg['dice']['mean']:.4f} (min {seg['dice']['min']:.4f}), "
        f"levels named correctly {seg['levels_named_correctly']}/{seg['levels_total']}"
    )
    for block in ("per_level", "per_case"):
        if result[block]:
            net, base = result[block]["bccnet"], result[block]["hu_threshold"]
            print(
                f"{block}: BCC-Net accuracy {net['accuracy']:.4f}, macro AUC {net['macro_auc']:.4f}; "
                f"HU thresholds accuracy {base['accuracy']:.4f}, macro AUC {base.get('macro_auc', float('nan')):.4f}"
            )
    print(f"metrics written to {out / 'pipeline_metrics.json'}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import StudyOptions, run_batch

    options = StudyOptions(_thresholds(args), args.hu_offset, args.orientation)  # checked before anything runs

    def note() -> str | None:
        """Said once the batch starts (helper-38: before an argument error); torch loads then (helper-100: a batch
        into a folder another run writes into was refused only after it had)."""
        from .device import fallback_note, resolve_device

        return fallback_note(args.device, resolve_device(args.device))

    try:
        manifest = run_batch(
            args.input_root,
            args.out,
            args.scheduler,
            args.workers,
            args.device,
            str(args.seg_weights) if args.seg_weights else None,
            str(args.cls_weights) if args.cls_weights else None,
            settings=_inference_settings(args),
            options=options,
            device_note=note,
        )
    except KeyboardInterrupt:
        summary = Path(args.out) / "summary.csv"
        print(
            f"bonescreen: stopped; {summary} lists the studies finished and those not reached; running the same "
            "command again goes on "
            "from there"
            if summary.is_file()
            else "bonescreen: stopped before any study was screened",
            file=sys.stderr,
        )
        raise
    c = manifest["counts"]
    studies = f"{manifest['studies']} stud{'y' if manifest['studies'] == 1 else 'ies'}"
    print(
        # (helper-116, helper-118: "2 screened, 2 already done (1 of them without a result)" put a study screened now
        # among those done before: the count covers both)
        f"{studies}: {c['done']} screened, {c['skipped']} already done, {c['error']} failed; {c['no_result']} of those "
        f"screened, now or before, without a result "
        f"({manifest['workers']} worker{'s' if manifest['workers'] != 1 else ''}); see {Path(args.out) / 'summary.csv'}"
    )
    if manifest["duplicates"]:  # screened, but one series counted twice would bias an archive's figures
        shown = ", ".join(f"{k} = {v}" for k, v in list(manifest["duplicates"].items())[:10])
        print(f"the same series in two studies: {shown} (count each once; summary.csv's input_notes say so)")
    if manifest["failed"]:  # the study keys (inputs.csv gives their files; summary.csv, why)
        shown = ", ".join(manifest["failed"][:10]) + (" ..." if len(manifest["failed"]) > 10 else "")
        print(f"failed: {shown} ({Path(args.out) / 'inputs.csv'} gives their files, summary.csv why)")
    if manifest["no_result"]:  # screened, but no result: `screen` exits 1 for each (helper-111: a batch said nothing)
        shown = ", ".join(manifest["no_result"][:10]) + (" ..." if len(manifest["no_result"]) > 10 else "")
        print(f"no result: {shown} (summary.csv's bone_status_basis says why: no lumbar level found, ...)")
    # 0: every study screened (now or before) with a result; 1: some failed (summary.csv says why), gave no result,
    # or were not tried
    return 0 if manifest["succeeded"] else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import run_cli

    return run_cli(args.out, args.quick, args.device, args.seg_weights, args.seed)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but an error argparse says of one argument (a value an option's check or choices refused,
    an option's value missing, an unknown sub-command) is one line, as the other input errors are (helper-101:
    ``--device cuda`` on a machine without a GPU printed the usage block above the reason); a required option
    missing or an unknown option still shows the usage."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):  # argparse's words for a value an option's type or choices refused
            self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    from .nets.names import model_names  # no torch: parsing stays fast
    from .phantom.findings import FINDINGS_MODES
    from .phantom.realistic import EXTENTS

    p = _Parser(prog="bonescreen", description="Osteoporosis screening on routine lumbar CT.")
    p.add_argument("--version", action="version", version=f"bonescreen {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    ph = sub.add_parser("phantom", help="write synthetic lumbar CT cases with ground truth")
    ph.add_argument("out", type=user_path)
    ph.add_argument("--cases", type=_positive_int, required=True)
    ph.add_argument("--seed", type=_non_negative_int, default=0)
    ph.add_argument("--format", choices=("nifti", "dicom"), default="nifti")
    ph.add_argument(
        "--class-weights", type=_class_weights, default=None, help="normal,low,osteoporosis (default balanced)"
    )
    ph.add_argument("--contrast-probability", type=_probability, default=0.3)
    ph.add_argument("--thickness", type=_positive_float, default=None, help="slice thickness in mm (default drawn 1-3)")
    ph.add_argument("--no-t12", action="store_true", help="start the volume just above L1")
    ph.add_argument("--no-sacrum", action="store_true", help="end the volume just below L5")
    ph.add_argument(
        "--realistic",
        action="store_true",
        help="the realistic phantom: real bone shapes, pelvis, femurs, ribs, packed organs (3 mm slices by default)",
    )
    ph.add_argument(
        "--extent",
        choices=EXTENTS,
        default=None,
        help="field of view of --realistic cases (default abdomen-pelvis)",
    )
    ph.add_argument("--pixel", type=_positive_float, default=None, help="pixel size (mm) of --realistic cases")
    ph.add_argument(
        "--findings",
        choices=FINDINGS_MODES,
        default=None,
        help="--realistic cases: fractures, cement, screws and transitional anatomy drawn at random (default), "
        "none, drawn with normal anatomy (five lumbar vertebrae, twelve pairs of ribs), or fractures (one or two "
        "fractured lumbar levels on every case, a test set for fracture grading)",
    )
    ph.set_defaults(func=cmd_phantom)

    sy = sub.add_parser(
        "synth-slices", help="write MS-Net training slices of the realistic phantom (real bone shapes, pelvis, ribs)"
    )
    sy.add_argument("out", type=user_path, help="folder for slices_*.npz shards (existing shards are kept: resumable)")
    sy.add_argument("--scenes", type=_positive_int, required=True, help="synthetic patients drawn")
    sy.add_argument("--per-scene", type=_positive_int, default=6, help="slices per patient")
    sy.add_argument("--scenes-per-shard", type=_positive_int, default=20)
    sy.add_argument("--seed", type=_non_negative_int, default=0)
    sy.add_argument("--workers", type=_positive_int, default=1, help="processes")
    sy.add_argument(
        "--context",
        action="store_true",
        help="also the slices about 4 mm below and above each one, for the 2.5-D MS-Net (train-seg --context)",
    )
    sy.set_defaults(func=cmd_synth_slices)

    def common_training(q: argparse.ArgumentParser, epochs: int) -> None:
        q.add_argument("data", type=user_path, help="labelled case set (cases.csv + case folders)")
        q.add_argument("--out", type=user_path, required=True, help="weights folder")
        q.add_argument("--epochs", type=_positive_int, default=epochs)
        q.add_argument("--batch-size", type=_positive_int, default=64)
        q.add_argument(
            "--lr",
            type=_positive_float,
            default=None,
            help="base learning rate (default: the paper's; train-seg with --init-weights: 1e-4, a fine-tune's)",
        )
        q.add_argument("--val-fraction", type=_number(0.0, 1.0, with_low=True), default=0.2)
        q.add_argument("--seed", type=_non_negative_int, default=0)
        q.add_argument("--device", type=_device, default="auto")
        q.add_argument("--workers", type=_non_negative_int, default=0)
        q.add_argument("--resume", action="store_true", help="continue from the training state in --out")
        q.add_argument("--init-weights", type=user_path, default=None, help="start from these weights (fine-tuning)")

    ts = sub.add_parser("train-seg", help="train MS-Net (Adam 0.002, constant 2/3 of epochs, then linear to 0)")
    common_training(ts, 150)
    ts.add_argument("--model", choices=model_names("segmentation"), default="msnet-small")
    ts.add_argument("--width", type=_positive_float, default=None, help="channel multiplier (msnet: 1.0)")
    ts.add_argument("--slices-per-case", type=_positive_int, default=12)
    ts.add_argument(
        "--context",
        action="store_true",
        help="2.5-D MS-Net: three input channels, each slice between the CT 4 mm below and above it; "
        "one-channel --init-weights are widened (the neighbours start with zero weights)",
    )
    ts.add_argument(
        "--slices",
        type=user_path,
        action="append",
        default=[],
        help="folder of realistic-phantom slice shards (bonescreen synth-slices) to train on too; repeatable",
    )
    ts.add_argument(
        "--labelled",
        type=user_path,
        action="append",
        default=[],
        help="folder of your own CT with vertebra labels (VerSe, TotalSegmentator or nnU-Net layout); repeatable",
    )
    ts.add_argument(
        "--layout",
        choices=["nnunet", "shared", "totalseg", "verse"],  # bonescreen.data.labelled.LAYOUTS
        default=None,
        help="layout of --labelled (default: the first of shared, verse, totalseg, nnunet the folder holds)",
    )
    ts.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="NAME",
        help="a labelled CT of --labelled not to train on (leave-one-out evaluation); repeatable",
    )
    ts.add_argument(
        "--labelled-repeat",
        type=_positive_int,
        default=1,
        help="times each labelled CT's slices are seen per epoch (a few real scans among many phantom slices)",
    )
    ts.add_argument("--label-scheme", choices=["verse", "totalseg"], default="verse", help="nnU-Net label ids")
    ts.set_defaults(func=lambda a: _train(a, "segmentation"))

    tc = sub.add_parser("train-cls", help="train BCC-Net or an ablation (SGD 0.01, inverse-power decay)")
    common_training(tc, 30)
    tc.add_argument("--arch", choices=model_names("classification"), default="bccnet")
    tc.add_argument("--crops-per-case", type=_positive_int, default=144)
    tc.add_argument(
        "--also",
        type=user_path,
        action="append",
        default=[],
        help="another labelled case set to train on too (split by case as DATA is); repeatable",
    )
    tc.add_argument(
        "--input",
        choices=["energy-normalized", "hu"],
        default="energy-normalized",
        help="crops of the bone as it reads at the reference energy through each scan's internal calibration "
        "(default: holds across tube voltages), or the paper's HU crops",
    )
    tc.set_defaults(func=lambda a: _train(a, "classification"))

    sc = sub.add_parser(
        "screen", help="screen one CT: result.json, levels.nii.gz, vertebrae.nii.gz, seg.dcm (DICOM input), report.png"
    )
    sc.add_argument("input", type=user_path, help="DICOM folder, DICOM file or NIfTI")
    sc.add_argument(
        "--out",
        type=user_path,
        required=True,
        help="output folder: result.json, levels.nii.gz (L1-L5), vertebrae.nii.gz (every vertebra), report.png "
        "(seg.dcm, sr.dcm)",
    )
    sc.add_argument("--device", type=_device, default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    sc.add_argument("--seg-weights", type=user_path, default=None, help="default: the bundled MS-Net")
    sc.add_argument("--cls-weights", type=user_path, default=None, help="default: the bundled BCC-Net")
    sc.add_argument(
        "--labels",
        type=user_path,
        default=None,
        help="vertebra labels (NIfTI on the CT grid: a corrected levels.nii.gz or vertebrae.nii.gz, another tool's "
        "map): skip segmenting",
    )
    sc.add_argument(
        "--label-scheme",
        choices=SCHEME_NAMES,
        default=None,
        help="ids of --labels: bonescreen (the default: 1-5 = L1-L5, 6 = T12, 7 = sacrum, as levels.nii.gz and "
        "vertebrae.nii.gz), "
        "verse (VerSe), totalseg (TotalSegmentator's total task), or mask (any id above 0 is vertebral bone: a "
        "binary mask of the spine, split and named as MS-Net's mark is)",
    )
    _add_reading_options(sc)
    sc.add_argument(
        "--series",
        default=None,
        help="the DICOM series to read, by SeriesNumber or SeriesInstanceUID, where the folder holds several "
        "(default: the axial CT series with the most slices)",
    )
    _add_inference_options(sc)
    sc.set_defaults(func=cmd_screen)

    bt = sub.add_parser("batch", help="screen every CT series under a folder on Dask (summary.csv, manifest.json)")
    bt.add_argument("input_root", type=user_path)
    bt.add_argument(
        "--out", type=user_path, required=True, help="output folder: summary.csv, manifest.json, a folder per study"
    )
    bt.add_argument(
        "--scheduler",
        type=_scheduler_address,
        default=None,
        help="dask.distributed scheduler address, tcp://HOST:PORT (default: a LocalCluster)",
    )
    bt.add_argument(
        "--workers", type=_positive_int, default=None, help="LocalCluster workers (default: per GPU, else cores/2)"
    )
    bt.add_argument("--device", type=_device, default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    bt.add_argument("--seg-weights", type=user_path, default=None, help="default: the bundled MS-Net")
    bt.add_argument("--cls-weights", type=user_path, default=None, help="default: the bundled BCC-Net")
    _add_reading_options(bt, " of every study")
    _add_inference_options(bt)
    bt.set_defaults(func=cmd_batch)

    rp = sub.add_parser("reproduce", help="the paper's tables and figures on the synthetic benchmark")
    rp.add_argument("out", type=user_path)
    rp.add_argument("--quick", action="store_true", help="CI-sized run (a few cases, one epoch)")
    rp.add_argument("--device", type=_device, default="auto")
    rp.add_argument("--seg-weights", type=user_path, default=None, help="MS-Net weights (default: bundled)")
    rp.add_argument("--seed", type=_non_negative_int, default=0)
    rp.set_defaults(func=cmd_reproduce)

    ev = sub.add_parser("evaluate", help="segmentation and classification metrics on a labelled set")
    # (helper-111: most options had no description in --help)
    ev.add_argument(
        "data", type=user_path, help="a phantom set (cases.csv + case folders), or a folder of labelled CT (--layout)"
    )
    ev.add_argument(
        "--out", type=user_path, required=True, help="folder for metrics.json (with --pipeline, pipeline_metrics.json)"
    )
    ev.add_argument(
        "--seg-weights", type=user_path, default=None, help="MS-Net weights to score (default: the bundled ones)"
    )
    ev.add_argument(
        "--cls-weights", type=user_path, default=None, help="BCC-Net weights to score (default: the bundled ones)"
    )
    ev.add_argument(
        "--slices-per-case", type=_positive_int, default=12, help="phantom slices per case for the per-slice Dice"
    )
    ev.add_argument("--crops-per-case", type=_positive_int, default=24, help="crops per case for BCC-Net's accuracy")
    ev.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the slices and crops drawn")
    ev.add_argument("--device", type=_device, default="auto", help="auto (CUDA, then MPS, then the CPU), cpu, cuda")
    ev.add_argument(
        "--pipeline",
        action="store_true",
        help="score the whole pipeline in 3-D (segment, name levels, classify); bundled weights by default",
    )
    ev.add_argument(
        "--layout",
        choices=["nnunet", "shared", "totalseg", "verse"],  # bonescreen.data.labelled.LAYOUTS
        default=None,
        help="DATA is a folder of your own CT with vertebra labels in this layout (not a phantom set): scores "
        "MS-Net's mark (Dice) and the level names on each scan, with --seg-weights or the bundled weights",
    )
    ev.add_argument(
        "--label-scheme",
        choices=["verse", "totalseg"],
        default=None,
        help="label ids of an nnunet --layout (default verse); the other layouts carry their tools' own",
    )
    ev.set_defaults(func=cmd_evaluate)
    return p


#: Set when SIGTERM stopped the run (:func:`_stop_on_sigterm`): the exit code is then 143, as the shell gives.
_TERMINATED: list[bool] = []


def _raise_on_sigterm(signum, frame) -> None:
    _TERMINATED.append(True)
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """Make SIGTERM (``timeout``, systemd, Slurm, ``docker stop``) stop the command as Ctrl-C does: in order, the
    outputs consistent, a batch's summary written (helper-97: it ended the process at once, leaving a batch without
    summary or manifest and a screen's temporary file). Only where SIGTERM has its default action and on the main
    thread (a program that calls :func:`main` keeps its own handler)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_on_sigterm)


def _stopped() -> int:
    """Say that the run stopped, and give its exit code: 143 after SIGTERM, 130 after Ctrl-C (128 + the signal)."""
    if _TERMINATED:
        print("bonescreen: stopped (SIGTERM)", file=sys.stderr)
        return 143
    print("bonescreen: cancelled", file=sys.stderr)
    return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _TERMINATED.clear()
    _stop_on_sigterm()
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the arguments are checked (devices are probed there)
        return _stopped()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    tune_host_memory()  # the process is ours: the library itself leaves a GUI's or a script's settings alone
    try:
        return int(args.func(args) or 0)
    except BoneScreenError as exc:  # the user's input or arguments; anything else is a bug and surfaces as one
        print(f"bonescreen: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the system refuses, or a full disk (helper-92: tracebacks)
        if exc.errno not in _PATH_ERRNOS | _WRITE_ERRNOS:
            raise
        from .io.identifiers import system_reason  # (here: the readers' imports stay out of the CLI's start)

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bonescreen: error: {where}{system_reason(exc).lower()}", file=sys.stderr)
        return 1 if exc.errno in _WRITE_ERRNOS else 2
    except (Cancelled, KeyboardInterrupt):
        return _stopped()


def entry() -> NoReturn:
    """The ``bonescreen`` executable: :func:`main`, then exit without the interpreter's teardown.

    With torch and the networks loaded, Python's final clean-up of every module and
    object takes about half a second. The command's work is done and written by
    then, so after the ``atexit`` handlers have run (they close logs, temporary
    folders and worker pools) and the output is flushed, the process ends at once.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
