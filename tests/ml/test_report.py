"""report.png always shows the mask: a sagittal and axial views, also when no lumbar level was found; one slice
gets the axial view only; no panel is left empty."""

from __future__ import annotations

import copy
from itertools import pairwise

import numpy as np
import pytest

from bonescreen.figures import plt
from bonescreen.hu import HUThresholds, body_slice
from bonescreen.labels import CLASS_TITLES
from bonescreen.pipeline.screener import no_lumbar_result
from bonescreen.report import report_figure


def _volume(nz: int):
    hu = np.full((nz, 96, 96), 40.0, np.float32)
    vertebrae = np.zeros(hu.shape, np.uint8)
    vertebrae[:, 40:60, 40:60] = 6  # T12 only: nothing lumbar
    hu[vertebrae > 0] = 250.0
    return hu, vertebrae


def _panels(fig) -> list[str]:
    """What each axes shows: images (with the mask drawn over them), bars, a pie, text; '' when empty."""
    kinds = []
    for ax in fig.axes:
        if ax.images:
            overlay = ax.images[-1].get_array()
            kinds.append("mask" if np.asarray(overlay).any() else "image without mask")
        elif ax.patches:
            kinds.append("chart")
        elif ax.texts:
            kinds.append("text")
        else:
            kinds.append("")
    return kinds


@pytest.mark.parametrize(("nz", "views"), [(12, 2), (1, 1)])
def test_no_lumbar_level_still_shows_what_was_found(nz, views):
    hu, vertebrae = _volume(nz)
    result = no_lumbar_result(HUThresholds(), "vertebrae found: T12 (none lumbar)")
    fig = report_figure(hu, np.zeros_like(vertebrae), (2.0, 1.0, 1.0), result, "T12 only", vertebrae=vertebrae)
    kinds = _panels(fig)
    assert "" not in kinds and "image without mask" not in kinds, kinds
    assert kinds.count("mask") == views  # sagittal and axial; one slice: axial only
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "found: T12" in text and "no lumbar level" in text
    plt.close(fig)


def test_an_unconfirmed_bone_status_is_a_question_in_the_text_panel_too(classified):
    """helper-42: the headline asked "Normal bone mass?" while the text panel beside it stated "bone status: Normal
    bone mass (...; unconfirmed: ...)"."""
    volume, levels, result = classified
    result = copy.deepcopy(result)
    status = result["overall"]["prediction"]
    result["overall"]["bone_status"] = {"class": status, "basis": "vBMD 137 mg/cm3; unconfirmed: the names"}
    fig = report_figure(volume.hu, levels, volume.spacing, result, "case 7")
    text = next(t.get_text() for ax in fig.axes if not ax.images and not ax.patches for t in ax.texts)
    assert f"bone status: {CLASS_TITLES[status]}? (" in text.replace("\n", " ")
    plt.close(fig)


def test_a_short_series_shows_its_sagittal_strip_above_the_axial_view_not_in_a_tall_empty_column():
    """A clean-clone trial (stop 38): the T11-T12 series (40 mm of spine, 80 mm of it from front to back in the
    view) drew its sagittal view as a small strip in the middle of a column two rows tall, and the figure was
    mostly white. A series shorter than its sagittal view is wide now takes the top row's first panel, the axial
    view goes below it, and with nothing else to show the figure is less tall. A tall series keeps the column."""
    hu, vertebrae = _volume(20)
    result = no_lumbar_result(HUThresholds(), "vertebrae found: T12 (none lumbar)")
    short = report_figure(hu, np.zeros_like(vertebrae), (2.0, 1.0, 1.0), result, "T12 only", vertebrae=vertebrae)
    images = [ax for ax in short.axes if ax.images]
    sagittal, axial = sorted(images, key=lambda ax: -ax.get_position().y1)
    assert sagittal.get_position().y0 > axial.get_position().y1  # one above the other, not side by side
    assert abs(sagittal.get_position().x0 - axial.get_position().x0) < 0.1  # both in the first column
    hu_tall, vertebrae_tall = _volume(60)  # 120 mm of spine: taller than wide
    tall = report_figure(
        hu_tall, np.zeros_like(vertebrae_tall), (2.0, 1.0, 1.0), result, "T12 only", vertebrae=vertebrae_tall
    )
    sagittal, axial = sorted([ax for ax in tall.axes if ax.images], key=lambda ax: ax.get_position().x0)
    assert sagittal.get_position().x1 < axial.get_position().x0  # the column beside the axial view
    assert short.get_figheight() < tall.get_figheight()
    plt.close(short)
    plt.close(tall)


def test_the_sagittal_view_follows_a_scoliotic_spine_through_every_vertebra():
    """Stops 38-39 (helper-78): report.png's sagittal view cut one column for the whole series, the median of the
    columns the vertebrae cover, and missed the vertebrae of a curved spine (and fell beside the spine with one
    level's labels off the bone). Five vertebrae on a scoliotic curve 40 mm to the side at its apex: the view now
    follows the spine's midline slice by slice, cuts every vertebra through its bone, and says it is curved; a
    straight spine's view stays one plane."""
    nz, n = 60, 160
    hu = np.full((nz, 96, n), 40.0, np.float32)
    vertebrae = np.zeros(hu.shape, np.uint8)
    for i, vid in enumerate((5, 4, 3, 2, 1)):
        ks = slice(12 * i + 1, 12 * i + 11)
        centre = 48 + int(np.rint(40 * np.sin(np.pi * (12 * i + 6) / nz)))  # the apex at L3
        vertebrae[ks, 30:60, centre - 10 : centre + 10] = vid
    hu[vertebrae > 0] = 600.0
    result = no_lumbar_result(HUThresholds(), "vertebrae found: L1-L5")
    fig = report_figure(hu, np.zeros_like(vertebrae), (2.5, 1.0, 1.0), result, "scoliosis", vertebrae=vertebrae)
    sagittal = next(ax for ax in fig.axes if ax.get_title().startswith("sagittal view"))
    bone, shown = (np.asarray(image.get_array()) for image in sagittal.images)
    assert set(np.unique(shown)) == {0, 1, 2, 3, 4, 5}
    assert (bone[shown > 0] == 600.0).all()
    assert "curved" in sagittal.get_title()
    plt.close(fig)
    straight = np.zeros_like(vertebrae)
    straight[:, 30:60, 60:90] = vertebrae.max(axis=2, keepdims=True)[:, 30:60]
    fig = report_figure(hu, np.zeros_like(straight), (2.5, 1.0, 1.0), result, "straight", vertebrae=straight)
    sagittal = next(ax for ax in fig.axes if ax.get_title().startswith("sagittal view"))
    assert "curved" not in sagittal.get_title()
    plt.close(fig)


@pytest.fixture(scope="module")
def classified(small_case):
    """A phantom classified through its true labels (``screen --labels``): result.json and its volume."""
    from bonescreen.io.volume import CTVolume
    from bonescreen.pipeline import Screener

    volume = CTVolume(small_case.hu, small_case.spacing, np.diag([*small_case.spacing[::-1], 1.0]), None)
    return volume, small_case.levels, Screener(device="cpu").classify(volume, small_case.levels)


def _other_class(name: str) -> str:
    return next(c for c in ("osteoporosis", "normal") if c != name)


def test_the_headline_is_the_bone_status_not_the_networks_call(classified):
    volume, levels, result = classified
    result = copy.deepcopy(result)
    # a fracture makes the status osteoporosis whatever BCC-Net says (issue "Beyond the paper"): they differ
    status = _other_class(result["overall"]["prediction"])
    result["overall"]["bone_status"] = {"class": status, "basis": "vertebral fracture (L1 grade 3 wedge)"}
    fig = report_figure(volume.hu, levels, volume.spacing, result, "case 7")
    headline = fig._suptitle
    assert headline is not None and headline.get_text().startswith(f"Bone status: {CLASS_TITLES[status]}")
    pie = next(ax for ax in fig.axes if any(type(p).__name__ == "Wedge" for p in ax.patches))
    assert "BCC-Net (network)" in pie.get_title() and headline.get_fontsize() > pie.title.get_fontsize()
    text = next(t.get_text() for ax in fig.axes if not ax.images and not ax.patches for t in ax.texts)
    lines = text.splitlines()
    # the caller's title heads the text panel (it was overwritten by the pie's), the status comes before BCC-Net
    assert lines[0] == "case 7"
    assert text.index("bone status:") < text.index("BCC-Net (network):")
    vbmd = next(ax for ax in fig.axes if ax.get_ylabel() == "vBMD (mg/cm3)")
    assert f"mean of {'+'.join(result['overall']['vbmd_levels_used'])}" in vbmd.get_title()  # not L5's bar
    # each average says which levels it covers: the HU those of the network, vBMD those of ISCD's rule
    assert f"trabecular HU ({'+'.join(result['overall']['levels_used'])}):" in " ".join(lines).replace("\n  ", " ")
    # the overall call's own flag and the levels' flags are two statements (helper-46: "overall: not flagged
    # (levels flagged: L1, L3)" read as a contradiction)
    flagged = [lv["name"] for lv in result["levels"] if lv.get("uncertain")]
    joined = " ".join(lines).replace("\n  ", " ")
    assert (
        "overall call: UNCERTAIN" if result["overall"]["uncertain"] else "overall call: no flag of its own"
    ) in joined
    assert ("levels flagged: " + ", ".join(flagged) in joined) if flagged else "levels flagged" not in joined
    plt.close(fig)


def _hu_axes(fig):
    return next(ax for ax in fig.axes if ax.get_ylabel() == "trabecular HU")


@pytest.mark.parametrize("values", [[300, 40, 40, 40, 40], [40, 40, 40, 40, 300], [250] * 5, [None, 20, 90, 140, 170]])
def test_the_hu_thresholds_are_named_where_no_bar_is(classified, values):
    volume, levels, result = classified
    result = copy.deepcopy(result)
    for lv, v in zip(result["levels"], values, strict=True):
        lv["trabecular_hu"] = v
    fig = report_figure(volume.hu, levels, volume.spacing, result)
    fig.canvas.draw()
    ax = _hu_axes(fig)
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["normal above 160", "osteoporosis at/below 110"]
    box = legend.get_window_extent()
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert bars and not any(box.overlaps(b.get_window_extent()) for b in bars)
    plt.close(fig)


def test_the_hu_legend_says_where_the_lines_are_drawn_with_a_contrast_offset(classified):
    """helper-32: with --contrast-offset 20 the lines were drawn at 130 and 180 and the legend said 110 and 160."""
    volume, levels, result = classified
    result = copy.deepcopy(result)
    result["hu_thresholds"] = {**result["hu_thresholds"], "contrast_offset_hu": 20.0}
    fig = report_figure(volume.hu, levels, volume.spacing, result)
    ax = _hu_axes(fig)
    drawn = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert drawn == [130.0, 180.0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["normal above 180 (160 +20 contrast)", "osteoporosis at/below 130 (110 +20 contrast)"]
    plt.close(fig)


def _luminance(rgb) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour (0-1 channels)."""
    c = np.asarray(rgb[:3], float)
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def _contrast(a, b) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_sagittal_labels_are_readable_and_apart_when_vertebrae_lie_close(classified):
    from matplotlib.colors import to_rgb, to_rgba

    from bonescreen.labels import vertebra_color

    volume, levels, result = classified
    result = copy.deepcopy(result)
    # L1's body split in two by a hole in the mask: two vertebrae found a few slices apart, each measured
    split = levels.copy()
    ks = np.nonzero((levels == 1).any(axis=(1, 2)))[0]
    upper = split[ks[len(ks) // 2] :]
    upper[upper == 1] = 6  # the upper half named T12
    for lv, grade in zip(result["levels"], (3, 2, 1, 0, 0), strict=True):
        lv["fracture"] = {
            "height_anterior_mm": 20.5,
            "height_middle_mm": 22.5,
            "height_posterior_mm": 27.0,
            "genant_grade": grade,
            "shape": "wedge" if grade else None,
            "grade_doubt": {"grade": 1, "reason": "x"} if grade == 2 else None,
        }
    fig = report_figure(volume.hu, split, volume.spacing, result, vertebrae=split)
    fig.canvas.draw()
    sagittal = fig.axes[0]
    assert sagittal.get_title().startswith("sagittal view")
    texts = [t for t in sagittal.texts if t.get_text()]
    assert {"T12", "L1"} <= {t.get_text() for t in texts}
    assert any("grade 2? wedge" in t.get_text() for t in texts)  # a doubted grade as napari shows it
    assert any(t.get_text().startswith("21/23/27 mm") for t in texts)  # halves up (they read 20/22, half to even)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_bbox_patch() or t).get_window_extent(renderer) for t in texts]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
    # each text against what lies behind it: its box (if any) over the mask's colour over white bone
    for t in texts:
        patch = t.get_bbox_patch()
        for vid in (1, 2, 3, 4, 5, 6, 7):
            behind = 0.45 * np.asarray(vertebra_color(vid), float) / 255 + 0.55 * np.ones(3)
            if patch is not None:
                face = np.asarray(to_rgba(patch.get_facecolor()))
                alpha = patch.get_alpha() if patch.get_alpha() is not None else face[3]
                behind = alpha * face[:3] + (1 - alpha) * behind
            assert _contrast(to_rgb(t.get_color()), behind) >= 4.5, (t.get_text(), vid)
    plt.close(fig)


def test_a_levels_axial_view_goes_through_its_body_not_only_its_arch():
    """A tilted L3 in a small field of view: the middle of its body slices holds only its arch."""
    level = np.zeros((30, 64, 64), bool)
    level[0:12, 10:40, 12:52] = True  # the body, low in the range
    level[0:30, 44:60, 28:34] = True  # the arch (spinous process) on every slice
    k = body_slice(level, (0, 29), (1.5, 1.0, 1.0))
    assert 0 <= k < 12
    assert body_slice(level, (0, 11), (1.5, 1.0, 1.0)) in range(4, 8)  # the thickest slices: the middle of them
    assert body_slice(np.zeros_like(level), (3, 9), (1.5, 1.0, 1.0)) == 6  # nothing there: the middle


def test_neighbouring_vertebrae_have_colours_told_apart():
    """helper-33: T11 and T12 were two light blues, hard to tell apart in the report's sagittal view (and T12 near
    L4's blue). Every two neighbours along the spine, and every thoracic vertebra against each lumbar colour,
    differ by at least 100 in RGB (0-255)."""
    from itertools import pairwise

    from bonescreen.labels import LEVEL_COLORS, SPINE_ORDER, VERTEBRA_NAMES, level_id, vertebra_color

    def ids(name: str) -> int:
        return level_id(name) or next(k for k, v in VERTEBRA_NAMES.items() if v == name)

    def apart(a: int, b: int) -> float:
        return float(np.linalg.norm(np.subtract(vertebra_color(a), vertebra_color(b))))

    for upper, lower in pairwise(SPINE_ORDER):
        assert apart(ids(upper), ids(lower)) >= 150, (upper, lower)
    for t in (n for n in SPINE_ORDER if n.startswith("T")):
        for lumbar in LEVEL_COLORS:
            assert apart(ids(t), lumbar) >= 100, (t, lumbar)
    # an unnamed vertebra (helper-71: grey, lost over bone at half opacity): apart from every named colour,
    # saturated (it shows over white bone) and bright (its name reads on dark tissue)
    unnamed = vertebra_color(21)
    assert vertebra_color(40) == unnamed
    for vid in VERTEBRA_NAMES:
        assert apart(21, vid) >= 100, VERTEBRA_NAMES[vid]
    assert max(unnamed) - min(unnamed) >= 128
    assert float(np.dot([0.2126, 0.7152, 0.0722], np.asarray(unnamed) / 255)) >= 0.4  # luma, Rec. 709 weights


def test_sagittal_names_stay_within_the_image():
    """helper-36: on a tall scan the names of the top vertebrae, spread apart, ran above the sagittal view into the
    figure's title. Spread within the image's rows, they keep their order and gap and stay inside it."""
    from bonescreen.report import _spread

    rows = [2.0, 4.0, 6.0, 60.0]  # three names crowded at the image's top (row 0)
    free = _spread(rows, 10.0)
    assert min(free) < 0  # spread freely, the first goes above the image
    kept = _spread(rows, 10.0, (0.0, 99.0))
    assert min(kept) >= 5.0 and max(kept) <= 94.0
    ordered = sorted(kept)
    assert all(b - a >= 9.95 for a, b in pairwise(ordered))  # (the spreading stops within 0.1 %)


def test_each_levels_class_says_whose_it_is(classified):
    """Stop 55: each axial view's title put BCC-Net's call alone beside the level's vBMD ("Normal bone mass (flagged)
    / 133 HU, 110 mg/cm3"), under a headline resting on vBMD; 110 mg/cm3 is low bone mass to the ACR, and the
    title read as the class of that density. The network's call is named as its, the ACR category as the ACR's."""
    volume, levels, result = classified
    result = copy.deepcopy(result)
    level = result["levels"][0]
    level["vbmd_mg_cm3"], level["acr_category"] = 110.0, "low_bone_mass"
    level["prediction"] = "normal"
    fig = report_figure(volume.hu, levels, volume.spacing, result, "case 7")
    title = next(ax.get_title() for ax in fig.axes if ax.get_title().startswith(f"{level['name']} slice"))
    assert f"BCC-Net: {CLASS_TITLES['normal']} (p=" in title
    assert "110 mg/cm3" in title and f"(ACR: {CLASS_TITLES['low_bone_mass']})" in title
    # BCC-Net's class comes first, the ACR's after the density it is the category of
    assert title.index("BCC-Net") < title.index("mg/cm3") < title.index("ACR")
    plt.close(fig)
