"""End-to-end ``bonescreen screen`` time and peak resident memory on phantom volumes of 512x512 slices.

Each run is a fresh child process (so its peak RSS is its own); the volume is a phantom
NIfTI with the requested number of slices. Prints a table and writes JSON.

Run: .venv/bin/python benchmarks/screen_e2e.py [--slices 120] [--slices 60 120 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.phantom.write import write_case


def make_volume(slices: int, folder: Path) -> Path:
    """A phantom cut or padded (by repeating its top slices) to exactly ``slices`` slices."""
    case = make_case(777, 0, PhantomConfig(thickness=1.5))
    n = case.hu.shape[0]
    if slices <= n:
        start = max((n - slices) // 2, 0)
        keep = slice(start, start + slices)
        for name in ("hu", "levels", "body", "spine"):
            setattr(case, name, getattr(case, name)[keep])
    else:
        reps = [np.concatenate([a] + [a[-1:]] * (slices - n)) for a in (case.hu, case.levels, case.body, case.spine)]
        case.hu, case.levels, case.body, case.spine = reps
    write_case(case, folder, "nifti")
    return folder / "ct.nii.gz"


def run_once(ct: Path, out: Path, device: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bonescreen", "screen", str(ct), "--out", str(out), "--device", device],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads((out / "result.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
        "timings_s": result["timings_s"],
        "levels": [lv["name"] for lv in result["levels"]],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--slices", type=int, nargs="+", default=[120])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("bench-out/screen_e2e.json"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.slices):
            ct = make_volume(n, Path(tmp) / f"v{n}")
            row = {"slices": n, **run_once(ct, Path(tmp) / f"o{n}", args.device)}
            rows.append(row)
            print(
                f"{n} slices: {row['wall_s']} s wall (process start, imports and writing included), "
                f"peak RSS {row['peak_rss_mb']} MB, stages {row['timings_s']}"
            )
    info = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "device": args.device,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
