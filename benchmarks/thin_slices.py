"""Screening time and peak memory of a thin-slice CT: a whole abdomen-pelvis at 0.625 mm slices.

Most clinical CT is reconstructed at 0.5-1.25 mm slices: 500-900 slices of an abdomen-pelvis, where the
other benchmarks use 120-300 slices of 1.5-3 mm. This one makes (once, then reuses) a realistic phantom
of that kind with ``bonescreen phantom --realistic --thickness 0.625 --pixel 0.75 --findings normal-anatomy``
(484 x 484 pixels, about 735 slices), runs ``bonescreen screen`` on it as a fresh process, and prints the
wall time, the stages of result.json's ``timings_s`` (``segment`` holds MS-Net and the level split,
``classify`` BCC-Net and the bone-health measures), the peak resident memory, and the names found
against the phantom's truth.

    .venv/bin/python benchmarks/thin_slices.py [--data bench-out/thin] [--seed 9100] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def make_phantom(folder: Path, seed: int, thickness: float, pixel: float) -> Path:
    """The phantom's ct.nii.gz, made with the project's own command when it is not there yet."""
    cases = sorted(folder.glob("*/ct.nii.gz"))
    if not cases:
        cmd = [sys.executable, "-m", "bonescreen", "phantom", str(folder), "--cases", "1", "--seed", str(seed)]
        cmd += ["--realistic", "--extent", "abdomen-pelvis", "--thickness", str(thickness), "--pixel", str(pixel)]
        subprocess.run([*cmd, "--findings", "normal-anatomy"], check=True)
        cases = sorted(folder.glob("*/ct.nii.gz"))
    return cases[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("bench-out/thin"), help="where the phantom is made or found")
    p.add_argument("--seed", type=int, default=9100)
    p.add_argument("--thickness", type=float, default=0.625, help="slice thickness and spacing (mm)")
    p.add_argument("--pixel", type=float, default=0.75, help="pixel size (mm)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=Path("bench-out/thin_slices.json"))
    args = p.parse_args()
    ct = make_phantom(args.data, args.seed, args.thickness, args.pixel)
    out = args.data / "screen"
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bonescreen", "screen", str(ct), "--out", str(out), "--device", args.device],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"thin_slices.py: bonescreen screen failed: {proc.stderr[-2000:]}")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    result = json.loads((out / "result.json").read_text())
    with open(args.data / "cases.csv", newline="") as f:
        truth = next(csv.DictReader(f))
    shape = result["shape"]
    found = [lv["name"] for lv in result["levels"]]
    record = {
        "cpu": platform.processor() or platform.machine(),
        "shape_zyx": shape,
        "spacing_mm": result["spacing_mm"],
        "wall_s": round(wall, 1),
        "timings_s": result["timings_s"],
        "peak_rss_gb": round(peak_gb, 2),
        "levels_found": found,
        "truth_lumbar_count": int(truth["lumbar_count"]),
    }
    print(f"{shape[0]} slices of {shape[1]}x{shape[2]} at {result['spacing_mm']} mm; device {args.device}")
    print(f"bonescreen screen (fresh process): {wall:.1f} s wall, peak RSS {peak_gb:.2f} GB")
    print("stages (result.json timings_s): " + ", ".join(f"{k} {v:.1f} s" for k, v in result["timings_s"].items()))
    print(f"levels found: {', '.join(found)} (the phantom has L1-L{truth['lumbar_count']})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
