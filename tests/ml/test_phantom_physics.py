"""The realistic phantom's physics and findings: HU from materials over a tube spectrum, fractures of known
Genant grade, cement, screws with streaks, transitional anatomy (issue "Real CT", part 7)."""

import numpy as np
import pytest

from bonescreen.attenuation import Spectrum, enhanced, hounsfield, tissue, trabecular_bone
from bonescreen.errors import BoneScreenError
from bonescreen.hu import dense_body, trabecular_hu
from bonescreen.phantom.findings import Findings, Fracture, draw_findings, fracture_warp, genant_grade
from bonescreen.phantom.realistic import RealisticConfig, make_realistic_case
from bonescreen.phantom.scene import L6_ID, SACRUM_ID, Acquisition, draw_scene, render_slice
from bonescreen.phantom.write import case_row
from bonescreen.pipeline.bone_health import level_fractures


def test_tissue_hu_match_what_ct_shows_at_120_kvp():
    s = Spectrum(120.0, 6.0, 300.0)
    assert hounsfield(tissue("water"), s) == pytest.approx(0.0, abs=1e-9)
    assert hounsfield(tissue("air"), s) == pytest.approx(-1000.0, abs=2.0)
    assert -130 < hounsfield(tissue("adipose"), s) < -70  # subcutaneous fat
    assert 30 < hounsfield(tissue("muscle"), s) < 60
    assert 40 < hounsfield(tissue("blood"), s) < 65
    # about 25 HU per mg/ml of iodine at 120 kVp (Bae, Radiology 2010)
    rise = hounsfield(enhanced(tissue("blood"), 10.0), s) - hounsfield(tissue("blood"), s)
    assert 200 < rise < 320


def test_same_vbmd_reads_higher_at_low_kvp_and_rises_with_density():
    low, high = Spectrum(80.0, 6.0, 300.0), Spectrum(140.0, 6.0, 300.0)
    for vbmd in (60.0, 120.0, 180.0):
        assert hounsfield(trabecular_bone(vbmd, 0.5), low) > hounsfield(trabecular_bone(vbmd, 0.5), high) + 15
    hu = [hounsfield(trabecular_bone(v, 0.5), Spectrum()) for v in (40.0, 80.0, 120.0, 200.0)]
    assert np.all(np.diff(hu) > 0) and 20 < hu[1] < 200
    # beam hardening: a larger patient lowers bone HU at the same voltage
    small, large = Spectrum(120.0, 6.0, 220.0), Spectrum(120.0, 6.0, 400.0)
    assert hounsfield(trabecular_bone(150.0, 0.5), small) > hounsfield(trabecular_bone(150.0, 0.5), large)


def test_genant_grades_and_fracture_validation():
    assert [genant_grade(x) for x in (0.1, 0.22, 0.3, 0.45)] == [0, 1, 2, 3]
    with pytest.raises(BoneScreenError, match="grade"):
        Fracture(1, "wedge", 0.35)
    with pytest.raises(BoneScreenError, match="shape"):
        Fracture(2, "burst", 0.3)
    with pytest.raises(BoneScreenError, match="lumbar_count"):
        Findings(lumbar_count=7)
    rng = np.random.default_rng(0)
    for grade in (1, 2, 3):
        assert Fracture.draw(rng, grade).grade == grade


@pytest.fixture(scope="module")
def findings_case():
    """L2 wedge grade 3, L4 crush grade 2, cement in L4, screws in L3, six lumbar vertebrae, ribs on L1."""
    findings = Findings(
        fractures={2: Fracture(3, "wedge", 0.45), 4: Fracture(2, "crush", 0.33)},
        cement=(4,),
        screws=(3,),
        lumbar_count=6,
        ribs="l1_ribs",
    )
    config = RealisticConfig(extent="lumbar", slice_mm=2.0, pixel_mm=1.5, findings=findings, noise_hu=5.0)
    return make_realistic_case(5, 0, config)


def test_fractures_are_graded_measured_and_cement_found_on_the_phantom(findings_case):
    """The fracture assessment on the phantom's true bodies: L2 wedge grade 3, L4 crush grade 2 (with cement)."""
    case = findings_case
    found = level_fractures(case.body, case.spacing)
    assert (found["L2"]["genant_grade"], found["L2"]["shape"]) == (3, "wedge")
    assert found["L4"]["genant_grade"] >= 2 and found["L4"]["shape"] == "crush"
    assert all(found[n]["genant_grade"] < 2 for n in ("L1", "L3", "L5"))
    truth = case.meta["body_heights_mm"]  # read from the bone templates as they were placed and warped
    for name in ("L1", "L3", "L5"):
        for where in ("anterior", "middle", "posterior"):
            assert found[name][f"height_{where}_mm"] == pytest.approx(truth[name][where], abs=2.0), (name, where)
    hu = trabecular_hu(case.hu.astype(np.float32), case.body, case.spacing)
    assert "cement" in dense_body(hu[4]) and dense_body(hu[1]) is None
    # (the screws in L3 are metal: the pipeline takes metal out of the labels before measuring, metal.py)
    row = case_row(case)
    assert row["height_anterior_mm_L2"] < 0.65 * row["height_posterior_mm_L2"]


def test_cement_and_screws_are_drawn_and_recorded(findings_case):
    case = findings_case
    assert np.percentile(case.hu[case.body == 4], 90) > 2000  # cement (PMMA with BaSO4) in L4's body
    assert (case.hu[case.spine == 3] >= 3000).sum() > 20  # titanium screws inside L3
    assert (case.hu[case.spine == 5] >= 3000).sum() == 0
    row = case_row(case)
    assert row["genant_grade_L2"] == 3 and row["fracture_shape_L2"] == "wedge" and row["genant_grade_L3"] == 0
    assert row["cement_levels"] == "L4" and row["screw_levels"] == "L3" and row["lumbar_count"] == 6
    assert row["kvp"] in (80.0, 100.0, 120.0, 140.0)


def test_six_lumbar_vertebrae_put_an_l6_between_l5_and_the_sacrum(findings_case):
    spine = findings_case.spine

    def centre_z(v):
        return np.nonzero((spine == v).any(axis=(1, 2)))[0].mean()

    assert L6_ID in np.unique(spine)
    # z grows toward the head in BoneScreen volumes: L5 above L6 above the sacrum
    assert centre_z(5) > centre_z(L6_ID) > centre_z(SACRUM_ID)


def _bone_beside(findings: Findings, sid: int) -> int:
    """Pixels of bone 25-60 mm beside vertebra ``sid`` and behind its centre, at its centre height, outside any
    vertebra: rib heads and necks (the aorta, kidneys and bowel lie in front)."""
    rng = np.random.default_rng(3)
    scene = draw_scene(rng, findings)
    acq = Acquisition(1.0, (300, 300), (0.0, 0.0), 1.0, 0.4, 0.0, 3.0, -1024.0)
    hu, spine = render_slice(scene, acq, scene.levels_z[sid], rng)
    rows, cols = np.nonzero(spine == sid)
    dx = np.abs(np.arange(300) - cols.mean())
    behind = (np.arange(300) > rows.mean())[:, None]
    return int(((hu > 300) & (spine == 0) & behind & ((dx > 25) & (dx < 60))[None, :]).sum())


def test_four_lumbar_vertebrae_fuse_l5_to_the_sacrum_and_rib_variants():
    scene = draw_scene(np.random.default_rng(3), Findings(lumbar_count=4))
    ids = {b.spine_id for b in scene.bones}
    assert 5 not in ids and {1, 2, 3, 4, SACRUM_ID} <= ids
    with_ribs, without = _bone_beside(Findings(), 6), _bone_beside(Findings(ribs="no_t12_ribs"), 6)
    assert with_ribs > 20 and without < with_ribs / 4  # T12's ribs, then none
    assert _bone_beside(Findings(), 1) < 20 < _bone_beside(Findings(ribs="l1_ribs"), 1)  # a 13th pair on L1


def test_findings_modes_are_checked():
    with pytest.raises(BoneScreenError, match="findings must be one of"):
        RealisticConfig(findings="some")
    from bonescreen.phantom.findings import resolve_findings

    rng = np.random.default_rng(0)
    assert resolve_findings(rng, "none") == Findings()
    for _ in range(20):
        drawn = resolve_findings(rng, "normal-anatomy")
        assert drawn.lumbar_count == 5 and drawn.ribs == "normal"


def test_findings_only_on_vertebrae_that_exist_and_crush_loses_its_grade_everywhere():
    with pytest.raises(BoneScreenError, match="spine ids"):
        Findings(fractures={5: Fracture(2, "wedge", 0.3)}, lumbar_count=4)  # L5 is fused to the sacrum
    with pytest.raises(BoneScreenError, match="spine ids"):
        Findings(screws=(10,))  # no L6 with five lumbar vertebrae
    rng = np.random.default_rng(1)
    for _ in range(300):
        f = draw_findings(rng)
        assert set(f.fractures) | set(f.cement) | set(f.screws) <= set(f.levels())
    tp = np.stack(np.meshgrid(np.linspace(-20, 20, 9), [0.0], [10.0], indexing="ij")).reshape(3, -1)
    out = fracture_warp(tp, Fracture(2, "crush", 0.3), np.array([-26.0, -26, -16]), np.array([26.0, 26, 16]))
    assert np.allclose(out[2], 10.0 / 0.7)  # the same height loss at the front, middle and back


def test_discs_fill_the_space_between_bodies(findings_case):
    """Between L3's body and L2's above it, over the bodies' outline: disc (about 60-110 HU at 120 kVp), not fat."""
    case = findings_case
    z = np.arange(case.body.shape[0])[:, None, None]
    # per column through both bodies: the slices above L3's top and below L2's bottom (z grows toward the head)
    top3 = np.where(case.body == 3, z, -1).max(axis=0)
    low2 = np.where(case.body == 2, z, case.body.shape[0]).min(axis=0)
    outline = (top3 >= 0) & (low2 < case.body.shape[0])
    between = (z > top3) & (z < low2) & outline & (case.spine == 0)
    assert between.sum() > 0.5 * outline.sum()  # most columns have at least one disc slice between the bodies
    assert 40 < np.median(case.hu[between]) < 140
