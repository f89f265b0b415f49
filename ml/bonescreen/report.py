"""``report.png``: per level an axial slice with the mask, a sagittal overview, HU per level, the pie charts."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.colors import ListedColormap

from .figures import CLASS_COLORS, pie_axes, plt, save_figure
from .hu import HUThresholds
from .labels import CLASS_TITLES, LEVEL_COLORS, level_id
from .messages import user_messages

_LEVEL_CMAP = ListedColormap([(0, 0, 0, 0)] + [(*(c / 255 for c in LEVEL_COLORS[k]), 0.45) for k in range(1, 6)])
_BONE = {"cmap": "gray", "vmin": -250, "vmax": 1250}
#: Fixed figure margins (a tight bounding box would draw the figure twice).
_MARGINS = {"left": 0.04, "right": 0.98, "top": 0.93, "bottom": 0.03}


def render_report(
    hu: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    result: dict,
    path: str | os.PathLike,
    title: str = "BoneScreen",
) -> None:
    """Draw and save the report figure for one screened CT."""
    levels = result["levels"]
    n = max(len(levels), 1)
    fig = plt.figure(figsize=(max(3.0 * n, 12), 8.6))
    grid = fig.add_gridspec(2, max(n, 4), height_ratios=[1.15, 1.0], hspace=0.45, wspace=0.35, **_MARGINS)
    dz, dy, _ = spacing
    # sagittal overview through the spine's midline, cropped around the spine
    ax = fig.add_subplot(grid[0, 0])
    cols = np.nonzero(labels.any(axis=(0, 1)))[0]
    x = int(np.median(cols)) if cols.size else hu.shape[2] // 2
    rows = np.nonzero(labels.any(axis=(0, 2)))[0]
    y0, y1 = 0, hu.shape[1]
    if rows.size:
        half = int(70 / dy)
        y0, y1 = max(int(rows.mean()) - half, 0), min(int(rows.mean()) + half, hu.shape[1])
    ax.imshow(hu[::-1, y0:y1, x], aspect=dz / dy, **_BONE)
    ax.imshow(labels[::-1, y0:y1, x], aspect=dz / dy, cmap=_LEVEL_CMAP, vmin=0, vmax=5, interpolation="nearest")
    for lv in levels:
        z0, z1 = lv["slices"]
        ax.text((y1 - y0) * 0.04, hu.shape[0] - 1 - (z0 + z1) / 2, lv["name"], color="yellow", fontsize=9, va="center")
    ax.set_title("sagittal overview", fontsize=9)
    ax.axis("off")
    # HU per level with the thresholds
    ax = fig.add_subplot(grid[0, 1])
    th = HUThresholds(**result.get("hu_thresholds", {}))
    names = [lv["name"] for lv in levels]
    values = [lv["trabecular_hu"] if lv["trabecular_hu"] is not None else np.nan for lv in levels]
    colors = [
        CLASS_COLORS[["normal", "low_bone_mass", "osteoporosis"].index(lv["hu_category"])]
        if lv["hu_category"]
        else "0.6"
        for lv in levels
    ]
    ax.bar(names, values, color=colors)
    for value, label in ((th.normal_min, "normal above"), (th.osteoporosis_max, "osteoporosis at/below")):
        ax.axhline(value + th.contrast_offset_hu, color="0.3", ls="--", lw=0.8)
        ax.text(len(names) - 0.5, value + th.contrast_offset_hu + 3, f"{label} {value:.0f}", fontsize=7, ha="right")
    ax.set_ylabel("trabecular HU")
    ax.set_title("trabecular attenuation", fontsize=9)
    # overall pie chart (the paper's Figure 9)
    overall = result["overall"]
    ax = fig.add_subplot(grid[0, 2])
    if overall["probabilities"] is not None:
        used = ", ".join(overall["levels_used"])
        pie_axes(ax, overall["probabilities"], f"overall ({used}): {CLASS_TITLES[overall['prediction']]}")
    else:
        ax.axis("off")
    ax = fig.add_subplot(grid[0, 3])
    ax.axis("off")
    verdict = CLASS_TITLES[overall["prediction"]] if overall["prediction"] else "none (no lumbar level)"
    lines = [title, "", f"prediction: {verdict}"]
    if overall.get("trabecular_hu") is not None:
        lines.append(f"trabecular HU: {overall['trabecular_hu']:.0f} ({overall['hu_category']})")
    flagged = [lv["name"] for lv in result.get("levels", []) if lv.get("uncertain")]
    lines.append(
        "overall: UNCERTAIN"
        if overall["uncertain"]
        else "overall: not flagged" + (f" (levels flagged: {', '.join(flagged)})" if flagged else "")
    )
    lines += [f"- {m}" for m in user_messages(result)]
    ax.text(0, 1, "\n".join(lines), va="top", fontsize=8, wrap=True)
    # per level: mid-body axial slice with the mask
    for i, lv in enumerate(levels):
        ax = fig.add_subplot(grid[1, i])
        k = (lv["body_slices"][0] + lv["body_slices"][1]) // 2
        lid = level_id(lv["name"])
        level_k = labels[k] == lid
        rows, cols_ = np.nonzero(level_k)
        pad = 40
        crop = (
            (
                slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
                slice(max(cols_.min() - pad, 0), cols_.max() + pad + 1),
            )
            if rows.size
            else (slice(None), slice(None))
        )
        ax.imshow(hu[k][crop], **_BONE)
        ax.imshow(np.where(level_k, lid, 0)[crop], cmap=_LEVEL_CMAP, vmin=0, vmax=5, interpolation="nearest")
        hu_text = f"{lv['trabecular_hu']:.0f} HU" if lv["trabecular_hu"] is not None else "HU n/a"
        flag = " (!)" if lv["uncertain"] else ""
        ax.set_title(
            f"{lv['name']} slice {k}: {CLASS_TITLES[lv['prediction']]}{flag}\n{hu_text}, "
            f"p={max(lv['probabilities'].values()):.2f}",
            fontsize=8,
        )
        ax.axis("off")
    save_figure(fig, path, tight=False)
