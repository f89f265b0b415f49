"""The phantom: anatomy and labels where they belong, bone density that measurement recovers."""

import numpy as np
from scipy import ndimage

from bonescreen.hu import HUThresholds, hu_category, trabecular_hu
from bonescreen.phantom import VBMD_RANGES, PhantomConfig, make_case, vbmd_class


def test_case_geometry(small_case):
    c = small_case
    _nz, ny, nx = c.hu.shape
    assert (ny, nx) == (512, 512)
    assert 0.6 <= c.spacing[1] <= 0.9 and c.spacing[0] == 3.0
    assert set(np.unique(c.levels)) == {0, 1, 2, 3, 4, 5}
    assert set(np.unique(c.spine)) == {0, 1, 2, 3, 4, 5, 6, 7}  # with T12 and sacrum
    assert set(np.unique(c.body)) <= {0, 1, 2, 3, 4, 5}
    # bodies are inside their vertebra; each level is one connected piece, ordered L5 (bottom) to L1 (top)
    assert np.all(c.levels[c.body > 0] == c.body[c.body > 0])
    centres = []
    full = ndimage.generate_binary_structure(3, 3)
    for lv in range(1, 6):
        _, n = ndimage.label(c.levels == lv, structure=full)
        assert n == 1
        centres.append(np.nonzero(c.levels == lv)[0].mean())
    assert centres == sorted(centres, reverse=True)
    # discs between levels: slices with no lumbar bone between consecutive levels
    occupied = c.levels.any(axis=(1, 2))
    first, last = np.nonzero(occupied)[0][[0, -1]]
    assert not occupied[first:last].all()
    # reconstruction circle padding present, and HU plausible
    assert c.hu.min() == -3024
    inside = c.hu[c.hu > -3024]
    assert -1024 <= inside.min() and inside.max() < 2000


def test_tissues_have_their_hu(small_case):
    c = small_case
    mid = c.hu.shape[0] // 2
    img = c.hu[mid].astype(float)
    vertebra = c.levels[mid] > 0
    assert img[c.body[mid] > 0].mean() > 100
    # fat and muscle both present in the slice
    assert ((img > -150) & (img < -50)).mean() > 0.03
    assert ((img > 20) & (img < 80)).mean() > 0.05
    # air outside the body, gas in bowel
    assert (img < -900).mean() > 0.2
    assert not vertebra[:150].any()  # the spine is posterior


def test_trabecular_texture_follows_vbmd():
    """Sparser, lower-contrast trabeculae at low vBMD: the texture varies, it is not a flat grey value."""
    dense = make_case(1, 0, PhantomConfig(thickness=3.0, class_weights=(1, 0, 0), contrast_probability=0))
    porous = make_case(1, 1, PhantomConfig(thickness=3.0, class_weights=(0, 0, 1), contrast_probability=0))
    sds = []
    for c in (dense, porous):
        m = trabecular_hu(c.hu.astype(np.float32), c.body, c.spacing)
        assert all(v["sd_hu"] > 15 for v in m.values())
        sds.append(np.mean([v["mean_hu"] for v in m.values()]))
    assert sds[0] > sds[1] + 60


def test_no_t12_no_sacrum():
    c = make_case(2, 0, PhantomConfig(thickness=3.0, include_t12=False, include_sacrum=False))
    assert set(np.unique(c.spine)) <= {0, 1, 2, 3, 4, 5}
    assert set(np.unique(c.levels)) == {0, 1, 2, 3, 4, 5}


def test_measured_hu_tracks_vbmd_over_30_cases():
    vbmd, measured, classes, errors = [], [], [], []
    for i in range(30):
        c = make_case(11, i, PhantomConfig(thickness=3.0))
        assert c.label == vbmd_class(c.meta["case_vbmd"])
        for lv, m in trabecular_hu(c.hu.astype(np.float32), c.body, c.spacing).items():
            name = f"L{lv}"
            lo, hi = VBMD_RANGES[c.label]
            assert lo <= c.vbmd[name] <= hi
            vbmd.append(c.vbmd[name])
            measured.append(m["mean_hu"])
            classes.append(c.label)
            errors.append(m["mean_hu"] - c.trabecular_hu[name])
    # the ROI (the middle of the body) samples the texture: unbiased against the whole core's set value, a few
    # HU of spread (this phantom's trabecular plates read above 400 HU even at 3 mm and thin out in patches of
    # about 5 mm; the ROI's outlier rule, made for sclerosis and cortex, trims some of them, and the middle
    # slab holds fewer patches than the whole core: 11.2 HU of spread, largest error 37 HU, hu.OUTLIER_ROBUST_SD,
    # hu.ROI_DEPTH_FRACTION, hu.ROI_HALF_HEIGHT_MM; with the 12 mm slab before stop 66, 8.2 and 32 HU: the 10 mm slab
    # samples three 3 mm slices, not five, and moves less with a mask one slice too tall on real CT, hu's comment)
    assert abs(np.mean(errors)) < 2 and np.std(errors) < 12.5 and np.max(np.abs(errors)) < 40
    r = np.corrcoef(vbmd, measured)[0, 1]
    assert r > 0.95, r
    measured = np.array(measured)
    classes = np.array(classes)
    means = [measured[classes == k].mean() for k in ("normal", "low_bone_mass", "osteoporosis")]
    assert means[0] > means[1] + 30 > means[2] + 60
    # the HU thresholds (Pickhardt) call most levels right on the phantom
    calls = np.array([hu_category(h, HUThresholds()) for h in measured])
    assert (calls == classes).mean() > 0.8


def test_a_slice_holds_the_share_of_an_endplate_its_slab_reaches():
    """A slice averages its thickness: one whose centre misses a body's 1.1-1.6 mm endplate, in the body or in the
    disc beside it, still holds that share of it. Sampled at its centre alone, `make demo`'s phantom (2.5 mm) showed
    L4's lower end as trabecular bone on both slices, and its heights from its own true labels read 20 mm in front,
    truth 25 (through MS-Net's mark 21, and L4 was taken for a mildly deformed body)."""
    from bonescreen.fracture import body_heights
    from bonescreen.hu import body_from_levels, with_endplates
    from bonescreen.sample import sample_case

    case = sample_case("low_bone_mass")
    hu = case.hu.astype(np.float32)
    for level in range(1, 6):
        ks = np.nonzero((case.body == level).any(axis=(1, 2)))[0]
        middle = ks[len(ks) // 2]
        trabecular = float(np.median(hu[middle][case.body[middle] == level]))
        for end, beyond in ((ks[0], ks[0] - 1), (ks[-1], ks[-1] + 1)):
            section = case.body[end] == level
            brightest = max(float(hu[end][section].mean()), float(hu[beyond][section].mean()))
            assert brightest > trabecular + 80.0, (level, end, brightest, trabecular)  # the endplate stands out
    bodies = with_endplates(body_from_levels(case.levels, case.spacing), case.levels, case.spacing, hu)
    for level in range(1, 6):
        found, truth = body_heights(bodies == level, case.spacing), body_heights(case.body == level, case.spacing)
        for wall in ("anterior", "middle", "posterior"):
            assert abs(found[wall] - truth[wall]) <= case.spacing[0] / 2, (level, wall, found, truth)
