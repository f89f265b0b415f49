"""Copy trained weights into the package (fp16 storage) with their evaluation on held-out phantoms.

Run: .venv/bin/python scripts/bundle_weights.py SRC NAME [--eval METRICS.json]
(NAME is msnet-small or bccnet; writes ml/bonescreen/weights/NAME.safetensors and NAME.json;
--real and --lineage record the real-CT benchmark and the earlier training stages)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bonescreen.checkpoint import load_model, save_checkpoint
from bonescreen.weights import WEIGHTS_DIR


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src", type=Path)
    p.add_argument("name")
    p.add_argument("--eval", type=Path, default=None, help="metrics JSON on held-out phantoms to record")
    p.add_argument(
        "--eval-realistic", type=Path, default=None, help="metrics JSON on held-out realistic phantoms to record"
    )
    p.add_argument("--real", type=Path, default=None, help="benchmarks/real_ct.py JSON to record")
    p.add_argument("--lineage", type=Path, default=None, help="JSON list of the training stages before this one")
    args = p.parse_args()
    model, meta = load_model(args.src)
    keep = {
        k: v
        for k, v in meta.items()
        if k not in ("format", "format_version", "model", "config", "created", "sha256", "path")
    }
    if args.eval:
        evaluation = json.loads(args.eval.read_text())
        evaluation.pop("models", None)  # the hashes of the files evaluated; the tensors are these
        keep["held_out_evaluation"] = evaluation
    if args.eval_realistic:
        evaluation = json.loads(args.eval_realistic.read_text())
        evaluation.pop("models", None)
        keep["held_out_evaluation_realistic"] = evaluation
    if args.real:
        real = json.loads(args.real.read_text())
        keep["real_ct_evaluation"] = [
            {k: c[k] for k in ("case", "dice", "given", "found", "rule", "certain")} for c in real["cases"]
        ]
    if args.lineage:
        keep["lineage"] = json.loads(args.lineage.read_text())
    path = save_checkpoint(WEIGHTS_DIR / f"{args.name}.safetensors", model, keep, storage_dtype=torch.float16)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
