"""MS-Net (width 1/4) trained on a lent GPU for a fixed time, on phantom slices drawn beside it.

Only the working tree travels to the GPU machine: its CPU cores draw the realistic phantom's
slices and first-phantom cases while the GPU trains each variant on everything drawn so far
(``bonescreen.train.stream``). Writes ``<variant>_<percent>.safetensors`` and ``.json`` (weights
that ``--seg-weights`` takes) and ``stream_log.json`` under OUT. Training stops BUDGET_S seconds
after the start; the last snapshot (BatchNorm statistics, validation Dice) follows. The generators
need cores (about 2 slices per second each): the script prints the usable cores (affinity and CPU
quota; ``nproc`` prints 1 under OMP_NUM_THREADS=1) and a line every 15 s while it waits for the
first slices (the lease of 2026-12-04 printed nothing for 520 s: model card). Example:

    OMP_NUM_THREADS=1 PYTHONPATH=ml .venv/bin/python scripts/train_gpu_stream.py $OUT --budget-s 420 \\
        --variant plain:ml/bonescreen/weights/msnet-small.safetensors:1e-4:0 \\
        --variant aug:ml/bonescreen/weights/msnet-small.safetensors:1e-4:1 --variant scratch:random:1e-3:1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from bonescreen.data.labelled import LAYOUTS, find_labelled, leave_out
from bonescreen.device import resolve_device
from bonescreen.errors import BoneScreenError
from bonescreen.threads import usable_cores
from bonescreen.train.stream import StreamPlan, Variant, default_workers, train_stream


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(","))
    except ValueError:
        raise BoneScreenError(f"--snapshots {text!r}: give budget fractions separated by commas (0.6,1.0)") from None


def main() -> None:
    try:
        _run()
    except BoneScreenError as exc:
        print(f"train_gpu_stream: {exc}", file=sys.stderr)
        sys.exit(2)


def _run() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for the weights and stream_log.json")
    p.add_argument(
        "--variant",
        action="append",
        required=True,
        help="NAME:INIT:LR:AUG, repeatable: INIT 'random' or MS-Net (width 1/4) weights; LR Adam's base rate; "
        "AUG 1 randomizes HU scale, offset, blur and noise, 0 keeps the paper's rotation and shift only",
    )
    p.add_argument("--budget-s", type=float, default=420.0, help="seconds of the run, start to last step")
    p.add_argument(
        "--workers", type=int, default=default_workers(), help="generator processes (default: usable cores - 1)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="slices per step (shared by the variants)")
    p.add_argument(
        "--capacity",
        type=int,
        default=None,
        help="realistic slices kept on the device, a ring (0.6 MB each with the first phantom's; "
        "default 60000 on a GPU, 4000 on the CPU)",
    )
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    p.add_argument("--seed", type=int, default=100, help="realistic-phantom seed (validation: seed + 1)")
    p.add_argument("--snapshots", default="0.6,1.0", help="budget fractions at which weights are written")
    p.add_argument("--val-scenes", type=int, default=40, help="held-out realistic scenes for the validation Dice")
    p.add_argument("--val-cases", type=int, default=4, help="held-out first-phantom cases for the validation Dice")
    p.add_argument("--labelled", type=Path, action="append", default=[], help="real CT with vertebra labels (a folder)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default=None, help="layout of --labelled")
    p.add_argument("--label-scheme", choices=["verse", "totalseg"], default="verse", help="nnU-Net label ids")
    p.add_argument("--leave-out", action="append", default=[], help="a labelled CT not to train on (repeatable)")
    p.add_argument("--labelled-share", type=float, default=0.25, help="share of each batch from --labelled")
    args = p.parse_args()
    labelled = [c for folder in args.labelled for c in find_labelled(folder, args.layout, args.label_scheme)]
    if args.leave_out:
        labelled = leave_out(labelled, args.leave_out)
    device = resolve_device(args.device)
    print(json.dumps({"usable_cores": usable_cores(), "workers": args.workers, "device": str(device)}), flush=True)
    if device.type == "cpu":
        torch.set_num_threads(max(1, usable_cores() - args.workers))
    if device.type == "cuda":
        print(torch.cuda.get_device_name(0), flush=True)
        torch.backends.cudnn.benchmark = True
    plan = StreamPlan(
        budget_s=args.budget_s,
        workers=args.workers,
        seed=args.seed,
        batch_size=args.batch_size,
        capacity=args.capacity or (60000 if device.type == "cuda" else 4000),
        snapshots=_fractions(args.snapshots),
        val_scenes=args.val_scenes,
        val_cases=args.val_cases,
        labelled=tuple(labelled),
        labelled_share=args.labelled_share,
    )
    log = train_stream(args.out, [Variant.parse(v) for v in args.variant], plan, device)
    print(json.dumps({"total_s": log["total_s"], "snapshots": log["snapshots"]}), flush=True)
    os._exit(0)  # everything is written; do not wait for generator processes still drawing


if __name__ == "__main__":
    main()
