"""MS-Net's vertebra mask on the real CT in ../shared/data against the vertebra labels that come with it.

Run: .venv/bin/python scripts/real_data_check.py   (prints Dice per dataset and the HU under the mask)
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np

from bonescreen.io import load_ct
from bonescreen.io.volume import reorient
from bonescreen.metrics import dice_score
from bonescreen.pipeline import Screener

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def dcmqi_truth(volume) -> np.ndarray:
    data, header = nrrd.read(str(REAL / "dcmqi-ct3slice" / "spine_seg.nrrd"))
    a = np.eye(4)
    a[:3, :3] = np.asarray(header["space directions"], float).T
    a[:3, 3] = header["space origin"]
    mask, _, _ = reorient(data, np.diag([-1.0, -1.0, 1.0, 1.0]) @ a)
    return mask == 2


def totalseg_truth(volume) -> np.ndarray:
    img = nib.load(REAL / "totalseg-t11t12-dicom-labels.nii.gz")
    labels, _, _ = reorient(np.asarray(img.dataobj), img.affine)
    return np.isin(labels, (32, 33))


def main() -> None:
    screener = Screener(device="cpu")
    for name, truth_fn in (("dcmqi-ct3slice", dcmqi_truth), ("totalseg-t11t12-dicom", totalseg_truth)):
        volume = load_ct(REAL / name)
        seg = screener.segment(volume)
        truth = truth_fn(volume)
        print(
            f"{name}: Dice {dice_score(seg.mark, truth):.3f} (MS-Net mark vs given vertebra labels), "
            f"mean HU under the mark {volume.hu[seg.mark].mean():.0f}, "
            f"vertebrae named {[v.name for v in seg.vertebrae]}"
        )
    volume = load_ct(REAL / "pancreasct-slice" / "explicit_VR-UN.dcm")
    seg = screener.segment(volume)
    print(
        f"pancreas slice: {seg.mark.sum()} voxels marked, mean HU under the mark {volume.hu[seg.mark].mean():.0f}, "
        f"named {[v.name for v in seg.vertebrae]}"
    )


if __name__ == "__main__":
    main()
