"""``report.png``: the mask in a sagittal view with body heights, an axial slice per level, HU and vBMD per level
(with the ACR bands), the pie chart, the bone status and the flags."""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np
from matplotlib.colors import ListedColormap
from scipy import ndimage

from .density import ACR_LOW_BONE_MASS_BELOW, ACR_OSTEOPOROSIS_BELOW, vbmd_text
from .figures import class_color, pie_axes, plt, save_figure
from .hu import BODY_SLICE_AREA_FRACTION, HUThresholds, body_slice, hu_as_categorized, hu_text
from .labels import CLASS_TITLES, level_id, vertebra_color, vertebra_name
from .messages import grade_text, headline, left_out_of_overall, status_basis, status_confirmed, user_messages

#: Every vertebra id (DESIGN.md) in its colour, half transparent; 0 clear.
_VERTEBRA_CMAP = ListedColormap([(0, 0, 0, 0)] + [(*(c / 255 for c in vertebra_color(k)), 0.45) for k in range(1, 256)])
_BONE = {"cmap": "gray", "vmin": -250, "vmax": 1250}
#: Least z extent (mm) that gets a sagittal view: a lumbar body's height is 23.5-32.4 mm (Clouthier et al. 2023).
SAGITTAL_MIN_MM = 20.0
#: Fixed figure margins (a tight bounding box would draw the figure twice); top and bottom are set in inches.
_MARGINS = {"left": 0.04, "right": 0.98}
#: Inches: a line of the notes (8 pt monospace at 1.2 line spacing is 0.133 in), the headline's band at the
#: top, the gap between the images' titles and the notes, and the margin under the notes.
_NOTE_LINE_IN = 0.15
_TITLE_IN = 0.8
#: Inches each further line of a wrapped headline adds to its band (13 pt at 1.2 line spacing is 0.22 in).
_HEADLINE_LINE_IN = 0.25
_NOTES_GAP_IN = 0.45
_NOTES_BOTTOM_IN = 0.1
#: Text over the images: an opaque dark box, so that no mask colour behind it (L1 is red) can hide the text.
_TEXT_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "black", "alpha": 0.9, "linewidth": 0}
#: Colour of a level's heights by its Genant grade (0, 1, 2-3), light enough on the dark box.
_GRADE_TEXT = ("#7fe8ff", "#ffb347", "#ff8080")
_SAGITTAL_TEXT_PT = 7.0


def _spread(rows: list[float], gap: float, limits: tuple[float, float] | None = None) -> list[float]:
    """Label rows moved apart, in order, so that neighbours are at least ``gap`` apart (centred on the rows).

    With ``limits`` (first, last row of the image), the labels are kept within them, half a gap from each
    edge, where there is room: spread past the image's top, a label ran into the figure's title.
    """
    if not rows:
        return []
    order = np.argsort(rows)
    out = np.asarray(rows, float)[order]
    for _ in range(50 * len(out)):
        moved = False
        for i in range(1, len(out)):
            short = gap - (out[i] - out[i - 1])
            if short > 1e-3 * gap:
                out[i - 1] -= short / 2
                out[i] += short / 2
                moved = True
        if not moved:
            break
    if limits is not None:
        low, high = limits[0] + gap / 2, limits[1] - gap / 2
        if out[-1] - out[0] <= high - low:  # room for them all: slide the run back inside
            out += max(low - out[0], 0.0) - max(out[-1] - high, 0.0)
    result = np.empty_like(out)
    result[order] = out
    return result.tolist()


#: Length (mm along z) over which the sagittal view's column is smoothed (:func:`_sagittal_window`): about half a
#: lumbar body's height, so that the view follows a scoliotic curve (Cobb angles of 10-50 degrees bend the spine
#: over several vertebrae) but not a stray label on a few slices.
SAGITTAL_SMOOTH_MM = 15.0

#: Least sideways travel (mm) of the sagittal view's column that the title calls curved.
SAGITTAL_CURVED_MM = 3.0


def _sagittal_window(shown: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, int, int]:
    """Where the sagittal view cuts (a column per slice) and the rows it shows (``y0`` to ``y1``), from the map of
    the vertebrae found (z, y, x).

    The column of each slice is the median column of the vertebrae's voxels in it (the midline: the body and the
    arch are symmetric about it), a running median over :data:`SAGITTAL_SMOOTH_MM`, carried to the slices without
    vertebrae from the nearest ones: a curved planar reformation along the spine, as radiologists view a
    scoliotic spine, so that every vertebra is cut through. One column for the whole series missed the vertebrae
    of a scoliotic curve and, with one level's labels off the bone, fell beside the spine. The rows are the
    vertebrae from front to back and 15 mm round them, at most 140 mm.

    Returns
    -------
    (ndarray, int, int)
        int (z,) column of each slice; the first row and one past the last row shown.
    """
    nz, ny, nx = shown.shape
    dz, dy = spacing[0], spacing[1]
    columns = np.full(nz, np.nan)
    for k in np.nonzero(shown.any(axis=(1, 2)))[0]:
        columns[k] = np.median(np.nonzero(shown[k])[1])
    have = np.isfinite(columns)
    if not have.any():
        columns[:] = nx // 2
    else:
        size = max(1, round(SAGITTAL_SMOOTH_MM / dz)) | 1
        smooth = ndimage.median_filter(columns[have], size=min(size, int(have.sum()) | 1), mode="nearest")
        columns = np.interp(np.arange(nz), np.nonzero(have)[0], smooth)
    rows = np.nonzero(shown.any(axis=(0, 2)))[0]
    y0, y1 = 0, ny
    if rows.size:
        # a short scan's spine is shown as large as its panel allows (the whole 140 mm made the L2-L4 crop a
        # strip in empty space)
        margin, half = int(15 / dy), int(70 / dy)
        centre = (int(rows.min()) + int(rows.max())) // 2
        y0 = max(int(rows.min()) - margin, centre - half, 0)
        y1 = min(int(rows.max()) + 1 + margin, centre + half, ny)
    return np.clip(np.rint(columns), 0, nx - 1).astype(int), y0, y1


def _along(volume: np.ndarray, columns: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """The sagittal view of ``volume`` (z, y, x) through ``columns`` (one per slice), rows ``y0`` to ``y1``:
    (z, y), the first slice at the bottom (as drawn, head up)."""
    z = np.arange(volume.shape[0])[:, None]
    return volume[z, np.arange(y0, y1)[None, :], columns[:, None]][::-1]


def _whole_mm(mm: float) -> str:
    """A height (mm, one decimal in result.json) to whole mm, halves up: "{:.0f}" rounds half to even, so 24.5 mm
    read 24 and 25.5 read 26."""
    return str(math.floor(mm + 0.5))


def _sagittal(
    ax, hu, shown, spacing, names, window: tuple[int, int, int], heights: dict[str, dict] | None = None
) -> None:
    """Sagittal view through the spine's midline with every vertebra shown and named.

    ``window``: the column of each slice and the rows it shows (:func:`_sagittal_window`).

    ``heights``: level name -> its ``fracture`` entry of result.json; each measured level gets its
    anterior/middle/posterior heights (mm) and, when graded, its Genant grade and shape.
    """
    heights = heights or {}
    dz, dy, _ = spacing
    columns, y0, y1 = window
    ax.imshow(_along(hu, columns, y0, y1), aspect=dz / dy, **_BONE)
    ax.imshow(
        _along(shown, columns, y0, y1), aspect=dz / dy, cmap=_VERTEBRA_CMAP, vmin=0, vmax=255, interpolation="nearest"
    )
    placed = []  # (row of the vertebra's middle, name, heights text, colour)
    for vid in names:
        # the name at the middle of the slices where the vertebra is widest (its body), not of all its slices:
        # posterior elements given to the wrong vertebra stretch those (helper-32: names stacked mid-image)
        area = (shown == vid).sum(axis=(1, 2))
        ks = np.nonzero(area >= BODY_SLICE_AREA_FRACTION * area.max())[0] if area.any() else area[:0]
        if ks.size:
            name = vertebra_name(vid)
            f = heights.get(name)
            text, color = None, None
            if f:
                text = "/".join(_whole_mm(f[f"height_{k}_mm"]) for k in ("anterior", "middle", "posterior")) + " mm"
                if f["genant_grade"]:  # '?': the slices cannot tell it from the grade across 25 % (grade_doubt)
                    text += f"\ngrade {grade_text(f)} {f['shape']}"
                color = _GRADE_TEXT[min(int(f["genant_grade"]), 2)]
            placed.append((hu.shape[0] - 1 - (ks[0] + ks[-1]) / 2, name, text, color))
    # labels of vertebrae found close together (a body split in two) would overlap: keep them a text
    # line (two for heights with a grade) apart, in rows of the image as drawn
    ax.apply_aspect()
    rows_per_point = hu.shape[0] / (ax.get_position().height * ax.figure.get_figheight() * 72.0)
    lines = max((2 if p[2] and "\n" in p[2] else 1) for p in placed) if placed else 1
    rows_at = _spread(
        [p[0] for p in placed], 1.3 * max(8.0, _SAGITTAL_TEXT_PT * lines) * rows_per_point, (0.0, hu.shape[0] - 1.0)
    )
    for row, (_, name, text, color) in zip(rows_at, placed, strict=True):
        ax.text((y1 - y0) * 0.04, row, name, color="yellow", fontsize=8, va="center", bbox=_TEXT_BOX)
        if text:
            ax.text(
                (y1 - y0) * 0.97,
                row,
                text,
                color=color,
                fontsize=_SAGITTAL_TEXT_PT,
                va="center",
                ha="right",
                bbox=_TEXT_BOX,
            )
    # (two short lines each: one long line ran into the y-axis label of the plot beside it)
    curved = (columns.max() - columns.min()) * spacing[2] >= SAGITTAL_CURVED_MM
    title = "sagittal view" + (", curved\nalong the spine:" if curved else ":") + "\nthe vertebrae found"
    ax.set_title(title + ("\nbody heights (mm)\nanterior/middle/posterior" if heights else ""), fontsize=9)
    ax.axis("off")


def _vbmd(ax, levels: list[dict], overall: dict) -> None:
    """vBMD per level with its 1-SD uncertainty over the ACR bands; levels left out of the mean hatched."""
    names = [lv["name"] for lv in levels]
    values = [lv["vbmd_mg_cm3"] if lv.get("vbmd_mg_cm3") is not None else np.nan for lv in levels]
    errors = [lv.get("vbmd_sd_mg_cm3") or 0.0 for lv in levels]
    top = max(200.0, np.nanmax(values) + 30.0 if np.isfinite(values).any() else 200.0)
    for (lo, hi), cls in (
        ((0, ACR_OSTEOPOROSIS_BELOW), "osteoporosis"),
        ((ACR_OSTEOPOROSIS_BELOW, ACR_LOW_BONE_MASS_BELOW), "low_bone_mass"),
        ((ACR_LOW_BONE_MASS_BELOW, top), "normal"),
    ):
        ax.axhspan(lo, hi, color=class_color(cls), alpha=0.18)
        # the band's name outside the plot, on its right edge: inside it the bars would hide it
        ax.text(
            1.02,
            (lo + hi) / 2,
            CLASS_TITLES[cls],
            fontsize=6,
            va="center",
            ha="left",
            rotation=90,
            color="0.3",
            transform=ax.get_yaxis_transform(),
            clip_on=False,
        )
    left_out = overall.get("left_out") or {}
    bars = ax.bar(names, values, yerr=errors, color="0.45", capsize=3)
    for bar, name in zip(bars, names, strict=True):
        if name in left_out:
            bar.set_hatch("//")
            bar.set_facecolor("0.85")
    ax.set_ylim(0, top)
    ax.set_ylabel("vBMD (mg/cm3)")
    # which levels the overall vBMD averages (ISCD: the usable ones of L1-L4): L5's bar is not in it either
    used = "+".join(overall.get("vbmd_levels_used") or []) or "none"
    hatched = "\n(hatched: left out, see the flags)" if any(name in left_out for name in names) else ""
    ax.set_title(f"vBMD, ACR bands; overall: mean of {used}{hatched}", fontsize=9)


def _axial(ax, hu_k, shown_k, title: str, ids=None) -> None:
    """An axial slice with the mask (``ids`` only, when given), cropped round it."""
    mask = shown_k > 0 if ids is None else np.isin(shown_k, ids)
    rows, cols = np.nonzero(mask)
    pad = 40
    crop = (slice(None), slice(None))
    if rows.size:
        crop = (
            slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
            slice(max(cols.min() - pad, 0), cols.max() + pad + 1),
        )
    ax.imshow(hu_k[crop], **_BONE)
    ax.imshow(np.where(mask, shown_k, 0)[crop], cmap=_VERTEBRA_CMAP, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _overlaps(artist, others) -> bool:
    """Whether ``artist``'s drawn box overlaps any of ``others``' (display coordinates)."""
    renderer = artist.figure.canvas.get_renderer()
    box = artist.get_window_extent(renderer)
    return any(box.overlaps(o.get_window_extent(renderer)) for o in others)


def render_report(
    hu: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    result: dict,
    path: str | os.PathLike,
    title: str = "BoneScreen",
    vertebrae: np.ndarray | None = None,
) -> None:
    """Draw the report figure (:func:`report_figure`) and save it to ``path`` (a PNG, written atomically)."""
    save_figure(report_figure(hu, labels, spacing, result, title, vertebrae), path, tight=False)


def report_figure(
    hu: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    result: dict,
    title: str = "BoneScreen",
    vertebrae: np.ndarray | None = None,
):
    """The report figure for one screened CT (a matplotlib Figure).

    The mask is always shown: a sagittal view of every vertebra found (``vertebrae``, the map with the
    ids of DESIGN.md; the level ``labels`` when None) and an axial slice per classified level, or,
    when no lumbar level was found, an axial slice through what was found. A volume less than
    :data:`SAGITTAL_MIN_MM` tall (one slice, a few) gets the axial views only. Panels with nothing to
    show (HU, pie) are left out.

    Parameters
    ----------
    hu : ndarray
        float (z, y, x) CT in HU.
    labels : ndarray
        uint8 (z, y, x) level labels (0, 1..5).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    result : dict
        result.json's content.
    title : str
        First line of the text panel.
    vertebrae : ndarray, optional
        uint8 (z, y, x) map of every vertebra found.
    """
    shown = labels if vertebrae is None else vertebrae
    present = [int(k) for k in np.unique(shown) if k]
    levels = result["levels"]
    overall = result["overall"]
    # a sagittal view needs the height of a vertebral body at least (20 mm); fewer slices: axial views only
    thin = hu.shape[0] * spacing[0] < SAGITTAL_MIN_MM
    top = [] if thin else ["sagittal"]
    if levels:
        top.append("hu")
    off_bone = set(overall.get("labels_off_bone") or [])
    on_bone = [lv for lv in levels if lv["name"] not in off_bone]  # a density of labels off the bone means nothing
    if any(lv.get("vbmd_mg_cm3") is not None for lv in on_bone):
        top.append("vbmd")
    if overall["probabilities"] is not None:
        top.append("pie")
    top.append("text")
    bottom = max(len(levels), 1)
    # the sagittal view (the spine is tall and narrow) takes the first column of both image rows, so that its
    # vertebrae and their heights are large enough to read; the other panels and the axial views follow it
    # a series shorter than the sagittal view is wide (two vertebrae, a crop) is a wide strip: it takes the top
    # row's first panel only, and the axial views start below it (in the tall column it sat in empty space)
    window = _sagittal_window(shown, spacing) if "sagittal" in top else None
    wide = window is not None and hu.shape[0] * spacing[0] < (window[2] - window[1]) * spacing[1]
    first = 1 if "sagittal" in top and not wide else 0
    ncols = max(first + max(len(top) - first, bottom), len(top))
    width = max(3.0 * ncols, 9)
    # the flags and notes go below the images across the whole width, wrapped to it (8 pt monospace: 15
    # characters an inch), in a box of their own sized in inches, so that none is cut off however many
    chars = int(width * (_MARGINS["right"] - _MARGINS["left"]) * 15) - 2
    messages = [
        wrapped for m in user_messages(result) for wrapped in textwrap.wrap(f"- {m}", chars, subsequent_indent="  ")
    ]
    notes_in = _NOTE_LINE_IN * (len(messages) + 1)
    # the headline wrapped to the width (13 pt bold: about 8 characters an inch), its band as tall as its lines
    # (helper-108: a short series' "No bone status: ..." ran past both edges of the figure)
    line, cls = headline(overall)
    head = textwrap.wrap(line, int(width * (_MARGINS["right"] - _MARGINS["left"]) * 8))
    title_in = _TITLE_IN + _HEADLINE_LINE_IN * (len(head) - 1)
    # a wide strip with nothing but text beside it (no level classified) needs no tall top row
    strip_only = wide and set(top) == {"sagittal", "text"}
    top_ratio = 0.55 if strip_only else 1.15
    height = (6.8 if strip_only else 8.6) + notes_in + title_in - _TITLE_IN
    fig = plt.figure(figsize=(width, height))
    # a plot in the first column has a y-axis label, which the sagittal view has not: room for it on the left
    margins = {
        **_MARGINS,
        "left": _MARGINS["left"] if "sagittal" in top else 0.6 / width + _MARGINS["left"],
        "top": 1.0 - title_in / height,
        "bottom": (notes_in + _NOTES_GAP_IN) / height,
    }
    grid = fig.add_gridspec(2, ncols, height_ratios=[top_ratio, 1.0], hspace=0.42, wspace=0.35, **margins)
    panels = {
        name: fig.add_subplot(grid[0:2, 0] if name == "sagittal" and not wide else grid[0, i])
        for i, name in enumerate(top)
    }
    if "sagittal" in panels:
        heights = {lv["name"]: lv["fracture"] for lv in on_bone if lv.get("fracture")}
        _sagittal(panels["sagittal"], hu, shown, spacing, present, window, heights)
    if "vbmd" in panels:
        _vbmd(panels["vbmd"], on_bone, overall)
    if "hu" in panels:
        ax = panels["hu"]
        th = HUThresholds(**result.get("hu_thresholds", {}))
        names = [lv["name"] for lv in levels]
        values = [lv["trabecular_hu"] if lv["trabecular_hu"] is not None else np.nan for lv in levels]
        # the HU of labels off the bone mean nothing: grey bars
        colors = [class_color(None if lv["name"] in off_bone else lv["hu_category"] or None) for lv in levels]
        bars = ax.bar(names, values, color=colors)
        # levels left out of the overall figures (a fracture, a cut body, HU unlike the neighbours'): hatched, as in the
        # vBMD panel (helper-104: a left-out 210 HU level stood as a plain "normal" bar); a level without a vBMD still
        # serves the overall HU
        hatched = [n for n in names if left_out_of_overall(overall, n)]
        for bar, name in zip(bars, names, strict=True):
            if name in hatched:
                bar.set_hatch("//")
                bar.set_alpha(0.45)
        thresholds = [
            (th.normal_min, "normal above", class_color("normal")),
            (th.osteoporosis_max, "osteoporosis at/below", class_color("osteoporosis")),
        ]
        # each line where a measurement crosses it: the threshold plus the contrast offset, said in the legend
        offset = th.contrast_offset_hu
        for value, label, color in thresholds:
            said = f"{label} {value + offset:.0f}" + (f" ({value:.0f} {offset:+.0f} contrast)" if offset else "")
            # over the bars (zorder): a bar that crosses a line does not hide it (one level: one wide bar)
            ax.axhline(value + offset, color=color, ls="--", lw=1.0, label=said, zorder=3)
        # the thresholds are named in a legend above the tallest bar, never over one
        highest = max([th.normal_min + th.contrast_offset_hu, *[v for v in values if np.isfinite(v)]])
        ax.set_ylim(0, highest * 1.35)
        legend = ax.legend(loc="upper left", fontsize=6, framealpha=0.9, borderaxespad=0.3)
        if _overlaps(legend, bars):  # bars tall at the left: the right corner
            legend.remove()
            ax.legend(loc="upper right", fontsize=6, framealpha=0.9, borderaxespad=0.3)
        ax.set_ylabel("trabecular HU")
        ax.set_title("trabecular attenuation" + ("\n(hatched: left out, see the flags)" if hatched else ""), fontsize=9)
    if "pie" in panels:  # the paper's Figure 9
        used = ", ".join(overall["levels_used"])
        pie_axes(
            panels["pie"],
            overall["probabilities"],
            f"BCC-Net (network), {used}:\n{CLASS_TITLES[overall['prediction']]}",
        )
    ax = panels["text"]
    ax.axis("off")
    # the headline is the bone status, the tool's answer; BCC-Net's call is one of its inputs
    fig.suptitle("\n".join(head), fontsize=13, weight="bold", color=class_color(cls, "0.2"))
    lines = [title, ""]
    if overall.get("bone_status"):
        status = overall["bone_status"]
        asked = "" if status_confirmed(status) else "?"  # as the headline puts an unconfirmed status: a question
        lines.append(f"bone status: {CLASS_TITLES[status['class']]}{asked} ({status_basis(status)})")
    elif overall.get("bone_status_withheld"):
        lines.append(f"bone status: none ({overall['bone_status_withheld']})")
    if overall.get("vbmd_mg_cm3") is not None:
        used = "+".join(overall["vbmd_levels_used"])
        lines.append(
            # (no-break spaces: the value, its SD and unit wrap as one: "(1" and "SD" were split over two lines)
            f"vBMD ({used}): {vbmd_text(overall['vbmd_mg_cm3'])}\u00a0+-\u00a0{overall['vbmd_sd_mg_cm3']:.0f}"
            f"\u00a0mg/cm3 (1\u00a0SD; {CLASS_TITLES[overall['acr_category']]}, ACR)"
        )
    if overall.get("trabecular_hu") is not None:
        category = CLASS_TITLES[overall["hu_category"]]
        used = "+".join(overall["levels_used"])  # the network's levels (L1+L2), not vBMD's (L1-L4)
        overall_hu = hu_as_categorized(overall["trabecular_hu"], HUThresholds(**result.get("hu_thresholds", {})))
        lines.append(f"trabecular HU ({used}): {overall_hu} ({category}, HU thresholds)")
    if overall["prediction"]:
        lines.append(f"BCC-Net (network): {CLASS_TITLES[overall['prediction']]}")
    elif overall.get("labels_off_bone"):
        lines.append("BCC-Net (network): no overall call (the labels do not sit on bone)")
    else:
        lines.append("no lumbar level classified")
    flagged = [lv["name"] for lv in levels if lv.get("uncertain")]
    lines.append("overall call: UNCERTAIN" if overall["uncertain"] else "overall call: no flag of its own")
    if flagged:
        lines.append(f"levels flagged: {', '.join(flagged)} (reasons below)")
    if not levels:
        found = ", ".join(vertebra_name(k) for k in present) or "no vertebra"
        lines.append(f"found: {found}")
    lines = [w for line in lines for w in (textwrap.wrap(line, 36, subsequent_indent="  ") or [""])]
    ax.text(0, 1, "\n".join(lines), va="top", fontsize=8)
    notes = fig.add_axes(
        (_MARGINS["left"], _NOTES_BOTTOM_IN / height, _MARGINS["right"] - _MARGINS["left"], notes_in / height)
    )
    notes.axis("off")
    notes.text(0, 1, "\n".join(messages), va="top", fontsize=8, family="monospace")
    # per level: the axial slice through the thickest section of its body, with the mask
    for i, lv in enumerate(levels):
        lid = level_id(lv["name"])
        k = body_slice(labels == lid, lv["body_slices"], spacing)
        th = HUThresholds(**result.get("hu_thresholds", {}))
        level_text = f"{hu_text(lv['trabecular_hu'], th)} HU" if lv["trabecular_hu"] is not None else "HU n/a"
        if lv.get("vbmd_mg_cm3") is not None:
            # each class says whose it is: BCC-Net's call stood alone over the slice, beside a density in
            # another ACR category, and read as the class of that density
            level_text += f", {vbmd_text(lv['vbmd_mg_cm3'])} mg/cm3"
            if lv.get("acr_category"):
                level_text += f"\n(ACR: {CLASS_TITLES[lv['acr_category']]})"
        flag = ", flagged" if lv["uncertain"] else ""  # the reasons are in the notes below
        said = (
            f"{lv['name']} slice {k}: labels off the bone\n(no figure of it means anything)"
            if lv["name"] in off_bone  # (helper-35: "Osteoporosis" shown)
            else f"{lv['name']} slice {k}\nBCC-Net: {CLASS_TITLES[lv['prediction']]} "
            f"(p={max(lv['probabilities'].values()):.2f}{flag})\n{level_text}"
        )
        _axial(fig.add_subplot(grid[1, first + i]), hu[k], labels[k], said, ids=[lid])
    if not levels:  # what was found, through its largest slice
        k = int(np.argmax((shown > 0).sum(axis=(1, 2)))) if present else hu.shape[0] // 2
        what = ", ".join(vertebra_name(v) for v in np.unique(shown[k]) if v) or "nothing marked"
        _axial(fig.add_subplot(grid[1, first]), hu[k], shown[k], f"slice {k}: {what}\n(no lumbar level classified)")
    return fig
