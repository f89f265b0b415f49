"""Studies per minute of ``bonescreen batch`` with 1 and 2 local Dask workers (CPU).

Run: .venv/bin/python benchmarks/batch_throughput.py [--studies 6]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bonescreen.batch import run_batch
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.phantom.write import write_case


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--studies", type=int, default=6)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=Path("bench-out/batch_throughput.json"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "archive"
        for i in range(args.studies):
            folder = write_case(make_case(8080, i, PhantomConfig(thickness=3.0)), root / f"s{i}", "nifti")
            for truth in ("levels", "body", "spine"):  # an archive holds CT only
                (folder / f"{truth}.nii.gz").unlink()
        for workers in args.workers:
            out = Path(tmp) / f"out{workers}"
            t0 = time.perf_counter()
            manifest = run_batch(root, out, workers=workers, device="cpu", progress=False)
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "workers": workers,
                    "studies": manifest["studies"],
                    "seconds": round(dt, 1),
                    "studies_per_minute": round(60 * manifest["studies"] / dt, 2),
                    "errors": manifest["counts"]["error"],
                }
            )
            print(
                f"{workers} worker(s): {manifest['studies']} studies in {dt:.1f} s = "
                f"{rows[-1]['studies_per_minute']} studies/min (cluster start and model loading included)"
            )
            shutil.rmtree(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
