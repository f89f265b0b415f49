"""Scores of the pipeline on real CT with vertebra labels (VerSe, TotalSegmentator, nnU-Net layouts).

``bonescreen evaluate FOLDER --layout ...`` and ``benchmarks/real_ct.py`` use the same function, so a user's
own labelled scans are measured as the bundled real images are (issue "Real CT", item 6).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from .data.label_coverage import label_coverage
from .data.labelled import LabelledCT
from .errors import BoneScreenError
from .hu import body_from_levels, trabecular_hu
from .metrics import dice_score
from .pipeline import Screener
from .pipeline.bone_health import scan_calibration


def vertebra_hu(volume, own: np.ndarray) -> float | None:
    """Mean trabecular HU of one vertebra found by the split (its body, eroded, middle slices), as ``screen``."""
    body = body_from_levels(own.astype(np.uint8), volume.spacing)
    m = trabecular_hu(volume.hu, body, volume.spacing).get(1)
    return None if m is None or m["mean_hu"] is None else round(m["mean_hu"], 1)


def bone_health(volume, seg, result: dict) -> dict:
    """The scan's internal density calibration and each lumbar level's body heights (mm), as ``screen``'s result.json
    gives them (``result``: :meth:`~bonescreen.pipeline.Screener.screen` of ``seg``).

    helper-111: measured here on their own, the heights were those of the lowest five vertebrae found (the sacrum
    among them, L1 left out) and the calibration sampled the slices of every vertebra found, so both differed from
    ``screen``'s on the same CT and mark. Without a lumbar level (``screen`` gives no calibration) the calibration is
    taken round every vertebral body found (``calibration_scope`` says so), so that a thoracic series' reference
    tissues are still printed.
    """
    heights = {}
    for level in result["levels"]:
        fracture = level.get("fracture") or {}
        walls = {w: fracture.get(f"height_{w}_mm") for w in ("anterior", "middle", "posterior")}
        heights[level["name"]] = walls if None not in walls.values() else None
    if result.get("density_calibration") is not None:
        return {"calibration": result["density_calibration"], "calibration_scope": "lumbar levels", "heights": heights}
    bodies = body_from_levels(seg.vertebra_map, volume.spacing)
    calibration = scan_calibration(volume.hu, seg.vertebra_map, bodies, volume.spacing, volume.acquisition)
    return {"calibration": calibration.as_dict(), "calibration_scope": "every vertebra found", "heights": heights}


def scored_found(row: dict) -> list[dict]:
    """The vertebrae found that a row of :func:`evaluate_labelled_case` scores names on: all of them, or, where the
    labels hold some vertebrae only, those that mostly cover one."""
    return [f for f in row["found"] if f["truth"] or not row["partial"]]


def row_lines(row: dict) -> tuple[str, str]:
    """The Dice's scope (empty for a fully labelled CT) and the per-vertebra line of a row, as printed."""
    scope = (
        f" (the given vertebrae only: the labels hold {len(row['given'])} vertebra(e) of those in view: "
        f"{'; '.join(row['unlabelled'])})"
        if row["partial"]
        else ""
    )
    each = ", ".join(
        f"{p['given']} {p['dice']:.3f}" + ("" if p["found"] == p["given"] else f" (found as {p['found'] or 'none'})")
        for p in row["per_vertebra"]
    )
    return scope, f"Dice per given vertebra (the vertebra found that covers most of it): {each}"


def found_text(row: dict, named: Callable[[dict], str] = lambda f: f["name"]) -> str:
    """The vertebrae found, as a line lists them: all of them; where the labels hold some vertebrae only, those
    scored (:func:`scored_found`) and how many others (helper-83: 13 names listed for a CT labelled for T12)."""
    scored = scored_found(row)
    others = len(row["found"]) - len(scored)
    listed = ", ".join(named(f) for f in scored)
    if not others:
        return listed or "none"
    found = f"{others} other vertebra{'e' if others > 1 else ''} found, not labelled"
    if not listed:  # (helper-86: "( and 7 not labelled; given S1)")
        return f"none mostly within the given vertebrae; {found}"
    # (helper-111: "T12 and 13 not labelled" read as the names T12 and T13)
    return f"{listed}; {found}"


def mean_dice(rows: list[dict]) -> tuple[float | None, float | None]:
    """Mean Dice over the fully labelled CT, and apart over those labelled for some vertebrae (a different measure:
    on those vertebrae only); None where there is none."""
    full = [r["dice"] for r in rows if not r["partial"]]
    some = [r["dice"] for r in rows if r["partial"]]
    return (float(np.mean(full)) if full else None, float(np.mean(some)) if some else None)


def mean_dice_text(rows: list[dict]) -> str:
    """:func:`mean_dice` as printed."""
    full, some = mean_dice(rows)
    n_some = sum(r["partial"] for r in rows)
    text = f"mean Dice {full:.3f} over {len(rows) - n_some} fully labelled CT" if full is not None else ""
    if some is not None:
        text += f"{'; ' if text else 'no fully labelled CT; '}{n_some} CT labelled for some vertebrae only: mean Dice "
        text += f"on those vertebrae {some:.3f}"
    return text or "no fully labelled CT"


#: A vertebra found is matched with the given vertebra it overlaps most when the overlap is at least this share of the
#: smaller of the two (:func:`evaluate_labelled_case`): a few voxels of a neighbour do not name it.
MATCH_SHARE = 0.1


def evaluate_labelled_case(screener: Screener, case: LabelledCT) -> dict:
    """Segment and name one labelled CT and score it against its labels.

    Parameters
    ----------
    screener : Screener
        Holds MS-Net (its weights are the ones scored).
    case : LabelledCT
        From :func:`~bonescreen.data.labelled.find_labelled` or
        :func:`~bonescreen.data.labelled.builtin_real_cases`.

    Returns
    -------
    dict
        ``case``, ``dice`` (the mark against every given vertebra, all slices; where the labels hold only some
        vertebrae, ``partial``, the vertebrae found that cover them against those; ``unlabelled`` says why,
        :func:`~bonescreen.data.label_coverage.label_coverage`), ``per_vertebra`` (each given
        vertebra from the lowest up: its name, the vertebra found that covers most of it and that one's Dice
        against it), ``given`` (the names of the given
        vertebrae from the lowest up, ``unnamed id N`` for an id without a BoneScreen name) and ``found`` (each
        vertebra found: its name, the given vertebra it mostly covers, slices, ribs, trabecular HU and body
        heights in mm), ``named_right``, ``given_found``, the naming ``rule``, ``certain`` and ``notes``, the
        scan's density ``calibration``, ``seconds``, ``label_notes``
        (:meth:`~bonescreen.data.labelled.LabelledCT.label_notes`); and, for figures, ``_volume``, ``_mark`` and
        ``_truth``.

    Raises
    ------
    BoneScreenError
        If the CT or its labels cannot be read, or no given vertebra sits on the CT's bone
        (:func:`~bonescreen.mask_fit.off_bone`: labels of another scan or orientation).
    """
    volume = case.load_volume()
    try:
        truth = case.load_checked_labels(volume)  # DESIGN.md ids on the CT grid
    except BoneScreenError as exc:
        raise BoneScreenError(f"{exc.problem}: not scored", exc.path) from None
    # labels of some of the vertebrae in view only (a TotalSegmentator folder with some vertebrae's files, or a map
    # past whose ends the CT shows more spine: helper-83, a map of the sacrum alone was scored as complete)
    unlabelled = case.partial_reasons() + label_coverage(volume.hu, truth, volume.spacing).unlabelled
    partial = bool(unlabelled)
    sizes = np.bincount(truth.ravel())  # voxels of each given id
    ids = [int(v) for v in np.flatnonzero(sizes) if v]
    t0 = time.perf_counter()
    seg = screener.segment(volume)
    seconds = time.perf_counter() - t0
    # the given vertebrae from the lowest up (by their centres along z), one entry per id: ids without a BoneScreen
    # name (DESIGN.md 21-255, as cervical vertebrae map) each keep their own entry, not one "?" for all
    heights = ndimage.center_of_mass(truth > 0, truth, ids)
    lowest_up = [v for _, v in sorted(zip([h[0] for h in heights], ids, strict=True))]
    given = [name if (name := case.name_of(v)) != "?" else f"unnamed id {v}" for v in lowest_up]
    # as result.json, napari and Slicer name them: a name no id carries (C7, S?) is its id's "unnamed N" (helper-111:
    # evaluate said "C7" where screen said "unnamed 1")
    shown = dict(zip((v.index for v in seg.vertebrae), seg.map_names(), strict=True))
    names = {i + 1: name for i, name in shown.items()}
    per_vertebra, covering = [], np.zeros(truth.shape, bool)
    for vid, name in zip(lowest_up, given, strict=True):
        labelled = truth == vid
        found, counts = np.unique(seg.vertebra_map[labelled], return_counts=True)
        counts, found = counts[found > 0], found[found > 0]
        if not found.size:
            per_vertebra.append({"given": name, "found": None, "dice": 0.0})
            continue
        best = int(found[np.argmax(counts)])
        covering |= seg.vertebra_map == best
        dice = float(dice_score(seg.vertebra_map == best, labelled))
        per_vertebra.append({"given": name, "found": names.get(best), "dice": round(dice, 4)})
    # labels of some vertebrae only: the rest of the mark is no error
    dice = dice_score(covering, truth > 0) if partial else dice_score(seg.mark, truth > 0)
    found = []
    for v in seg.vertebrae:
        own = seg.vertebra_map == v.index + 1  # this vertebra's own voxels
        under, counts = np.unique(truth[own], return_counts=True)
        counts = counts[under > 0]
        under = under[under > 0]
        # labels of some vertebrae only: a vertebra found mostly outside them is none of them (it touches one); of
        # fully labelled scans, a few voxels of a given vertebra do not make one found "named as given" (helper-70:
        # L4 matched on a Dice of 0.009): it must hold MATCH_SHARE of that vertebra or be that much of it
        biggest = int(counts.max()) if under.size else 0
        given_size = int(sizes[under[np.argmax(counts)]]) if under.size else 0
        size = np.count_nonzero(own)
        if partial:
            labelled = 2 * biggest >= size
        else:
            labelled = biggest > 0 and biggest >= MATCH_SHARE * min(size, given_size)
        match = case.name_of(int(under[np.argmax(counts)])) if labelled else None
        found.append(
            {
                "name": shown[v.index],
                "truth": match,
                "slices": [int(v.slices[0]), int(v.slices[1])],
                "ribs": v.ribs_counted,  # as result.json's evidence: the ribs the naming counts
                "trabecular_hu": vertebra_hu(volume, own),
            }
        )
    screened, _, _ = screener.screen(volume, segmentation=seg)  # classified as `screen` classifies it
    bone = bone_health(volume, seg, screened)
    for f in found:
        f["heights_mm"] = bone["heights"].get(f["name"])
    return {
        "case": case.name,
        # the files scored: which map of a folder was read (helper-70: metrics.json did not say)
        "image": str(Path(case.image).resolve()),  # absolute (helper-83: relative to where it was run)
        "labels": [str(Path(p).resolve()) for p in case.labels],
        "calibration": bone["calibration"],
        "calibration_scope": bone["calibration_scope"],
        "shape_zyx": list(volume.hu.shape),
        "spacing_mm": [round(s, 3) for s in volume.spacing],
        "dice": round(float(dice), 4),
        "partial": partial,
        "unlabelled": unlabelled,  # why the labels hold some vertebrae only, one line each
        "label_notes": case.label_notes(),  # ids the scheme does not number, read as no vertebra
        "per_vertebra": per_vertebra,
        "given": given,
        "found": found,
        "named_right": sum(f["name"] == f["truth"] for f in found),
        "given_found": len({f["truth"] for f in found if f["truth"]}),
        "rule": seg.rule,
        "certain": seg.certain,
        "notes": seg.notes,
        "seconds": round(seconds, 2),
        "_volume": volume,
        "_mark": seg.mark,
        "_truth": truth,
    }
