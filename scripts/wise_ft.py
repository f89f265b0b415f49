"""Mix two MS-Nets in weight space: ``(1 - a) x base + a x fine_tuned`` for every tensor (WiSE-FT).

Robust fine-tuning in the manner of Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022:
interpolating the weights before and after fine-tuning often keeps the earlier network's robustness to
shifted data. A one-channel base is widened to the fine-tuned network's 2.5-D input first, with the
neighbours' kernels at zero, as ``train-seg --context`` starts (:func:`bonescreen.train.loop.widen_input`).
BatchNorm statistics are mixed too. The model card reports what it gave on real CT (nothing better).

Run: .venv/bin/python scripts/wise_ft.py FINE_TUNED A OUT [--base WEIGHTS]
then .venv/bin/python benchmarks/real_ct.py --seg-weights OUT
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bonescreen.checkpoint import load_model, save_checkpoint
from bonescreen.train.loop import widen_input
from bonescreen.weights import default_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fine_tuned", type=Path, help="weights fine-tuned from --base")
    p.add_argument("a", type=float, help="share of the fine-tuned weights, 0..1")
    p.add_argument("out", type=Path, help="weights folder to write")
    p.add_argument("--base", type=Path, default=default_weights("segmentation"))
    args = p.parse_args()
    if not 0.0 <= args.a <= 1.0:
        p.error("a must lie in 0..1")
    base, _ = load_model(args.base)
    tuned, meta = load_model(args.fine_tuned)
    target = tuned.state_dict()
    start = widen_input({k: v.float() if v.is_floating_point() else v for k, v in base.state_dict().items()}, target)
    mixed = {k: (1 - args.a) * start[k] + args.a * v if v.is_floating_point() else v for k, v in target.items()}
    tuned.load_state_dict(mixed)
    keep = {k: meta[k] for k in ("input_size", "preprocessing", "task") if k in meta}
    keep["wise_ft"] = {"base": str(args.base), "fine_tuned": str(args.fine_tuned), "a": args.a}
    print("wrote", save_checkpoint(args.out, tuned, meta=keep))


if __name__ == "__main__":
    main()
