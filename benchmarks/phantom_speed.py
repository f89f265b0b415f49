"""How long the phantom takes per case, and per 100 slices (one core). Prints and writes JSON.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/phantom_speed.py [--cases 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bonescreen.phantom import PhantomConfig, make_case


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench-out/phantom_speed.json"))
    args = p.parse_args()
    rows = []
    for i in range(args.cases):
        t = time.perf_counter()
        case = make_case(99, i, PhantomConfig())
        dt = time.perf_counter() - t
        rows.append(
            {
                "slices": case.hu.shape[0],
                "thickness_mm": case.spacing[0],
                "seconds": round(dt, 3),
                "seconds_per_100_slices": round(100 * dt / case.hu.shape[0], 3),
            }
        )
        print(
            f"case {i}: {case.hu.shape[0]} slices at {case.spacing[0]} mm in {dt:.2f} s "
            f"({100 * dt / case.hu.shape[0]:.2f} s per 100 slices)"
        )
    mean = sum(r["seconds_per_100_slices"] for r in rows) / len(rows)
    print(f"mean: {mean:.2f} s per 100 slices of 512x512")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": platform.processor() or platform.machine(), "cases": rows, "mean_seconds_per_100_slices": mean},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
