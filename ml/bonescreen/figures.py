"""Figures of the paper's kind (ROC, confusion matrix, metric distributions, pie chart), with matplotlib."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .atomic import atomic_path
from .labels import CLASS_NAMES, CLASS_TITLES

#: Pie colours of normal, low bone mass, osteoporosis.
CLASS_COLORS = ("#4daf4a", "#ff7f00", "#e41a1c")


def class_color(name: str | None, default: str = "0.6") -> str:
    """The colour of a class id (``normal``, ``low_bone_mass``, ``osteoporosis``); ``default`` for None."""
    return default if name is None else CLASS_COLORS[CLASS_NAMES.index(name)]


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 110, tight: bool = True) -> None:
    """Save through a temporary file and close the figure.

    ``tight`` trims the margins to the drawn content, at the cost of drawing the figure twice;
    figures laid out with explicit margins pass False.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None, format="png")
    plt.close(fig)


def roc_figure(curves: Mapping[str, Mapping], title: str = "ROC (one vs rest)") -> plt.Figure:
    """One-vs-rest ROC curves as in the paper's Figure 6."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for (name, c), color in zip(curves.items(), CLASS_COLORS, strict=False):
        ax.plot(c["fpr"], c["tpr"], color=color, label=f"{CLASS_TITLES.get(name, name)} (AUC {c['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return fig


def confusion_figure(cm: Sequence[Sequence[int]], class_names: Sequence[str] = CLASS_NAMES) -> plt.Figure:
    """Confusion matrix (rows: truth, columns: prediction) as in the paper's Figure 7."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(cm, cmap="Blues")
    titles = [CLASS_TITLES.get(n, n) for n in class_names]
    ax.set_xticks(range(len(titles)), titles, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(titles)), titles, fontsize=8)
    ax.set(xlabel="prediction", ylabel="truth", title="Confusion matrix")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black"
            )
    return fig


def distribution_figure(values: Mapping[str, np.ndarray], title: str = "Segmentation metrics per image") -> plt.Figure:
    """Histograms of per-image Dice, IoU and PA, as in the paper's Figure 5."""
    fig, axes = plt.subplots(1, len(values), figsize=(4 * len(values), 3.2), squeeze=False)
    for ax, (name, v) in zip(axes[0], values.items(), strict=True):
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        ax.hist(v, bins=30, color="#377eb8")
        ax.set(title=f"{name} (mean {v.mean():.4f})" if v.size else name, xlabel=name, ylabel="images")
    fig.suptitle(title)
    return fig


def pie_axes(ax: plt.Axes, probabilities: Mapping[str, float], title: str = "") -> None:
    """Draw the class-probability pie chart of the paper's Figure 9 on ``ax``.

    Wedges under 4% are not labelled on the pie (their labels would collide); the legend names all three.
    """
    values = [max(float(probabilities[n]), 0.0) for n in CLASS_NAMES]
    labels = [f"{100 * v:.0f}%" if v >= 0.04 else "" for v in values]
    wedges, _ = ax.pie(
        values,
        labels=labels,
        colors=CLASS_COLORS,
        startangle=90,
        counterclock=False,
        labeldistance=0.6,
        wedgeprops={"linewidth": 1, "edgecolor": "white"},
        textprops={"fontsize": 8, "color": "white", "weight": "bold"},
    )
    for wedge, v in zip(wedges, values, strict=True):
        if v < 1e-3 or v > 1 - 1e-3:  # an empty or a whole wedge: its white edges are a stray radius
            wedge.set_linewidth(0)
    ax.legend(
        wedges,
        [f"{CLASS_TITLES[n]} {100 * v:.1f}%" for n, v in zip(CLASS_NAMES, values, strict=True)],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.02),
        fontsize=7,
        frameon=False,
        ncol=1,
    )
    ax.set_title(title, fontsize=9)
    ax.axis("equal")
