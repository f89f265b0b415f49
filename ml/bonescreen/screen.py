"""Screen one CT file or folder and write the outputs of ``bonescreen screen``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .atomic import write_text_atomic
from .hu import HUThresholds
from .io import load_ct
from .io.writers import SEG_IDENTIFYING_TAGS, read_labels_nifti, write_dicom_seg, write_labels_nifti
from .pipeline import Screener
from .pipeline.progress import ProgressCallback
from .report import render_report


def screen_file(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    device: str = "auto",
    seg_weights: str | os.PathLike | None = None,
    cls_weights: str | os.PathLike | None = None,
    labels_path: str | os.PathLike | None = None,
    thresholds: HUThresholds = HUThresholds(),
    progress: ProgressCallback | None = None,
    screener: Screener | None = None,
    input_name: str | None = None,
) -> dict:
    """Run the main job on one CT and write its outputs.

    Writes ``result.json``, ``levels.nii.gz``, ``seg.dcm`` (DICOM input) and ``report.png``.

    Parameters
    ----------
    input_path : str or PathLike
        DICOM folder, DICOM file or NIfTI.
    out : str or PathLike
        Output folder (created).
    labels_path : str or PathLike, optional
        Corrected level labels (NIfTI on the CT's grid); segmentation is skipped.
    screener : Screener, optional
        A loaded screener to reuse (batch runs); else one is made from the other arguments.
    input_name : str, optional
        What result.json calls the input; the input path by default (batch runs give a key that names nobody).

    Returns
    -------
    dict
        The content of result.json.
    """
    out = Path(out)
    t0 = time.perf_counter()
    volume = load_ct(input_path)
    load_s = time.perf_counter() - t0
    screener = screener or Screener(seg_weights, cls_weights, device, thresholds)
    labels = read_labels_nifti(volume, labels_path) if labels_path else None
    result, labels = screener.screen(volume, progress, labels)
    out.mkdir(parents=True, exist_ok=True)
    outputs = {"levels": "levels.nii.gz", "report": "report.png"}
    write_labels_nifti(volume, labels, out / "levels.nii.gz")
    exports = {"levels.nii.gz": []}
    if volume.source.kind == "dicom" and labels.any():
        tags = write_dicom_seg(volume, labels, out / "seg.dcm")
        outputs["seg"] = "seg.dcm"
        exports["seg.dcm"] = tags
    t1 = time.perf_counter()
    render_report(volume.hu, labels, volume.spacing, result, out / "report.png", title=volume.description)
    result = {
        "input": input_name or str(Path(input_path)),
        **result,
        "outputs": outputs,
        "identifying_tags": {name: tags for name, tags in exports.items()},
        "identifying_tags_note": "a DICOM SEG repeats the source's patient and study tags so that it stays attached "
        f"to the study ({', '.join(SEG_IDENTIFYING_TAGS)} where present); "
        "levels.nii.gz, report.png and result.json carry none",
        "spacing_mm": [round(s, 4) for s in volume.spacing],
        "shape": list(volume.shape),
    }
    result["timings_s"] = {
        "load": round(load_s, 3),
        **result["timings_s"],
        "report": round(time.perf_counter() - t1, 3),
    }
    write_text_atomic(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result
