"""Labelled case sets on disk (phantom folders and the like), and the split by case."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BoneScreenError
from ..io import CTVolume, load_ct
from ..io.nifti import read_nifti
from ..io.writers import read_labels_nifti
from ..labels import CLASS_NAMES, as_level_labels


@dataclass
class CaseRecord:
    """One labelled case: its folder, class and files."""

    case_id: str
    label: str
    folder: Path
    row: dict

    @property
    def ct_path(self) -> Path:
        """``ct.nii.gz``, else the ``dicom/`` folder."""
        nifti = self.folder / "ct.nii.gz"
        return nifti if nifti.exists() else self.folder / "dicom"

    def load(self, names: tuple[str, ...] = ("levels", "body", "spine")) -> tuple[CTVolume, dict[str, np.ndarray]]:
        """Read the CT and the label maps ``names`` that are present, in (z, y, x); ``levels`` is required."""
        volume = load_ct(self.ct_path)
        labels = {}
        for name in dict.fromkeys(("levels", *names)):
            path = self.folder / f"{name}.nii.gz"
            if path.exists():
                labels[name] = _read_labels(volume, path)
        if "levels" not in labels:
            raise BoneScreenError("levels.nii.gz is missing", self.folder)
        return volume, labels


#: Ids a case set's label maps may hold (levels, bodies, all vertebrae, predictions): any uint8, never wrapped.
_ANY_ID = tuple(range(256))


def _read_labels(volume: CTVolume, path: Path) -> np.ndarray:
    if volume.source.kind == "nifti":
        return read_labels_nifti(volume, path, _ANY_ID)
    # a DICOM case's labels are stored on the same grid in NIfTI: reorient by their own affine
    from ..io.volume import reorient

    img = read_nifti(path)
    zyx, _, _ = reorient(np.asarray(img.dataobj), img.affine)
    if zyx.shape != volume.shape:
        raise BoneScreenError(f"label grid {zyx.shape} differs from the CT's {volume.shape}", path)
    return as_level_labels(zyx, str(path), _ANY_ID)


def load_case_set(root: str | os.PathLike) -> list[CaseRecord]:
    """Read ``cases.csv`` of a labelled set (columns ``case_id`` and ``class`` at least).

    Raises
    ------
    BoneScreenError
        If the file is missing, a column is missing, a class is unknown or a case folder is absent.
    """
    root = Path(root)
    table = root / "cases.csv"
    if not table.is_file():
        hint = "make one with `bonescreen phantom`"
        from .labelled import LAYOUTS, find_labelled

        for layout in LAYOUTS:  # a folder of real labelled CT: name the options that read it
            try:
                if root.is_dir() and layout != "shared" and find_labelled(root, layout):
                    hint = (
                        f"it holds CT with vertebra labels in the {layout} layout: `evaluate {root} --layout {layout}` "
                        f"scores them, and `train-seg PHANTOM_SET --labelled {root} --layout {layout}` trains on them"
                    )
                    break
            except BoneScreenError:
                continue
        raise BoneScreenError(f"no cases.csv: not a phantom case set ({hint})", root)
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    records = []
    for i, row in enumerate(rows, start=2):
        if "case_id" not in row or "class" not in row:
            raise BoneScreenError("cases.csv needs the columns case_id and class", table)
        if row["class"] not in CLASS_NAMES:
            raise BoneScreenError(
                f"line {i}: unknown class {row['class']!r} (expected {', '.join(CLASS_NAMES)})", table
            )
        folder = root / row["case_id"]
        if not folder.is_dir():
            raise BoneScreenError(f"line {i}: case folder {row['case_id']} is missing", root)
        records.append(CaseRecord(row["case_id"], row["class"], folder, row))
    if not records:
        raise BoneScreenError("cases.csv lists no cases", table)
    return records


def split_by_case(
    records: list[CaseRecord], test_fraction: float, seed: int = 0
) -> tuple[list[CaseRecord], list[CaseRecord]]:
    """Split cases into train and test, stratified by class; no case is in both (the paper's protocol)."""
    if not 0.0 <= test_fraction < 1.0:
        raise BoneScreenError("test_fraction must be in [0, 1)")
    rng = np.random.default_rng(seed)
    # shuffle within each class, then deal the classes in turn: the first cases dealt form the test set,
    # so even a tiny set gets round(n * test_fraction) test cases spread over the classes
    groups = [[r for r in records if r.label == cls] for cls in CLASS_NAMES]
    groups = [[g[i] for i in rng.permutation(len(g))] for g in groups]
    dealt = [g[i] for i in range(max(map(len, groups), default=0)) for g in groups if i < len(g)]
    n_test = round(len(records) * test_fraction)
    test, train = dealt[:n_test], dealt[n_test:]
    return train, test
