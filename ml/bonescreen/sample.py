"""Sample data made on demand: a phantom case of each class, small enough to make in seconds.

``python -m bonescreen.sample OUT [--class osteoporosis]`` writes ``OUT/dicom/``
(the CT as a DICOM series), ``OUT/levels.nii.gz`` and ``OUT/truth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .labels import CLASS_NAMES, class_index
from .phantom import PhantomCase, PhantomConfig, make_case
from .phantom.write import write_case

#: Seed and slice thickness of the samples: about 90 slices of 512x512.
SAMPLE_SEED = 20261126
SAMPLE_THICKNESS = 2.5


def sample_case(label: str = "low_bone_mass") -> PhantomCase:
    """The sample phantom of class ``label`` (the same every time)."""
    index = class_index(label)  # BoneScreenError naming the classes for any other name
    weights = tuple(1.0 if c == label else 0.0 for c in CLASS_NAMES)
    return make_case(
        SAMPLE_SEED,
        index,
        PhantomConfig(class_weights=weights, thickness=SAMPLE_THICKNESS, contrast_probability=0.0),
    )


def write_sample(out: str | os.PathLike, label: str = "low_bone_mass") -> Path:
    """Write the sample case as a DICOM series with its truth."""
    out = Path(out)
    case = sample_case(label)
    write_case(case, out, "dicom")
    truth = {
        "case_id": case.case_id,
        "class": case.label,
        "vbmd_mg_cm3": case.vbmd,
        "trabecular_hu": case.trabecular_hu,
        "levels": case.meta["slices"],
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return out


def main() -> None:
    """Command line of this module."""
    p = argparse.ArgumentParser(prog="python -m bonescreen.sample", description=__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--class", dest="label", choices=CLASS_NAMES, default="low_bone_mass")
    args = p.parse_args()
    print(f"sample written to {write_sample(args.out, args.label)}")


if __name__ == "__main__":
    main()
