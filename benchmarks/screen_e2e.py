"""End-to-end screening time, peak resident memory and overhead ratio on phantom volumes of 512x512 slices.

The volume is a phantom NIfTI with the requested number of slices. Three ways of running, each with
its overhead ratio (wall time / time spent inside the networks' forward passes):

- ``cold``: ``bonescreen screen`` as a fresh child process (interpreter start, imports, model loading,
  reading the NIfTI, writing levels.nii.gz, report.png and result.json); the fastest of ``--cold-runs``
  (all walls are in the JSON); the peak RSS is the children's largest.
- ``warm``: :func:`bonescreen.screen.screen_file` in a process that has already screened once
  (what ``bonescreen batch`` workers do per study): the same reading and writing, no start-up.
- ``in memory``: :meth:`Screener.screen` on a loaded volume (what the napari and Slicer Run buttons do).

Prints a table and writes JSON.

Run: .venv/bin/python benchmarks/screen_e2e.py [--slices 60 120 300] [--device cpu] [--cold-runs 3]
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


def run_cold(ct: Path, out: Path, device: str) -> dict:
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
    network = result["timings_s"]["network"]
    return {
        "wall_s": round(wall, 2),
        "network_s": network,
        "overhead_ratio": round(wall / network, 2),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
        "timings_s": result["timings_s"],
        "levels": [lv["name"] for lv in result["levels"]],
    }


def run_warm(ct: Path, out: Path, screener, repeats: int = 3) -> dict:
    """Best of ``repeats`` screen_file runs in this process, after one warm-up run."""
    from bonescreen.screen import screen_file

    screen_file(ct, out, screener=screener)
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        result = screen_file(ct, out, screener=screener)
        wall = time.perf_counter() - t
        network = result["timings_s"]["network"]
        if best is None or wall < best["wall_s"]:
            best = {"wall_s": round(wall, 3), "network_s": network, "overhead_ratio": round(wall / network, 2)}
    return best


def run_in_memory(ct: Path, screener, repeats: int = 3) -> dict:
    """Best of ``repeats`` Screener.screen runs on a volume already in memory."""
    from bonescreen.io import load_ct

    volume = load_ct(ct)
    best = None
    for _ in range(repeats):
        before = screener.stats.get("network_s", 0.0)
        t = time.perf_counter()
        screener.screen(volume)
        wall = time.perf_counter() - t
        network = screener.stats["network_s"] - before
        if best is None or wall < best["wall_s"]:
            best = {"wall_s": round(wall, 3), "network_s": round(network, 3)}
            best["overhead_ratio"] = round(wall / network, 2)
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--slices", type=int, nargs="+", default=[120])
    p.add_argument("--device", default="cpu")
    p.add_argument("--cold-runs", type=int, default=3, help="fresh processes per size; the fastest is reported")
    p.add_argument("--out", type=Path, default=Path("bench-out/screen_e2e.json"))
    args = p.parse_args()
    from bonescreen.pipeline import Screener

    screener = Screener(device=args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.slices):
            ct = make_volume(n, Path(tmp) / f"v{n}")
            colds = [run_cold(ct, Path(tmp) / f"o{n}", args.device) for _ in range(args.cold_runs)]
            row = {"slices": n, "cold": min(colds, key=lambda r: r["wall_s"])}
            row["cold"]["walls_s"] = [r["wall_s"] for r in colds]
            row["warm"] = run_warm(ct, Path(tmp) / f"w{n}", screener)
            row["in_memory"] = run_in_memory(ct, screener)
            rows.append(row)
            cold = row["cold"]
            print(
                f"{n} slices: cold {cold['wall_s']} s (runs {cold['walls_s']}; network {cold['network_s']} s, "
                f"ratio {cold['overhead_ratio']}), peak RSS {cold['peak_rss_mb']} MB, stages {cold['timings_s']}"
            )
            for kind in ("warm", "in_memory"):
                r = row[kind]
                print(f"    {kind}: {r['wall_s']} s (network {r['network_s']} s, ratio {r['overhead_ratio']})")
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
