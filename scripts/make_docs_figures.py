"""Figures for the README: an L3 slice of a phantom of each class beside the real lumbar slice.

Run: .venv/bin/python scripts/make_docs_figures.py  (writes docs/phantom_vs_real.png)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bonescreen.io import load_ct
from bonescreen.labels import CLASS_NAMES, CLASS_TITLES
from bonescreen.sample import sample_case

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "pancreasct-slice" / "explicit_VR-UN.dcm"


def crop_around(img: np.ndarray, centre: tuple[int, int], half: int) -> np.ndarray:
    r, c = centre
    return img[max(r - half, 0) : r + half, max(c - half, 0) : c + half]


def main() -> None:
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    for i, label in enumerate(CLASS_NAMES):
        case = sample_case(label)
        ks = np.nonzero((case.body == 3).any(axis=(1, 2)))[0]
        k = int(ks[len(ks) // 2])
        img = np.maximum(case.hu[k], -1024)
        rows, cols = np.nonzero(case.body[k] == 3)
        axes[0, i].imshow(img, cmap="gray", vmin=-160, vmax=240)
        axes[0, i].set_title(
            f"phantom, {CLASS_TITLES[label]}\nL3 slice {k}, vBMD {case.vbmd['L3']:.0f} mg/cm3, "
            f"{case.trabecular_hu['L3']:.0f} HU",
            fontsize=9,
        )
        zoom = crop_around(img, (int(rows.mean()), int(cols.mean())), int(45 / case.spacing[1]))
        axes[1, i].imshow(zoom, cmap="gray", vmin=-250, vmax=1250)
        axes[1, i].set_title("vertebral body, bone window", fontsize=9)
    real = load_ct(REAL)
    img = real.hu[0]
    axes[0, 3].imshow(img, cmap="gray", vmin=-160, vmax=240)
    axes[0, 3].set_title("real CT (Pancreas-CT, TCIA), upper lumbar\n0.86 mm pixels, contrast-enhanced", fontsize=9)
    bone = img > 200
    rows, cols = np.nonzero(bone[:, 180:330])
    centre = (int(np.median(rows)), int(np.median(cols)) + 180)
    axes[1, 3].imshow(crop_around(img, centre, int(45 / real.spacing[1])), cmap="gray", vmin=-250, vmax=1250)
    axes[1, 3].set_title("vertebral body, bone window", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Top: soft-tissue window (W 400, L 40). Bottom: bone window (W 1500, L 500), about 90 mm across.")
    out = ROOT / "docs" / "phantom_vs_real.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=70, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
