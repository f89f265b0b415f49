"""Segmentation and classification metrics of the paper (section 3.3), plus confidence intervals.

Segmentation metrics are computed on the vertebra (foreground) only:

- Dice ``2 TP / (2 TP + FP + FN)``, IoU ``TP / (TP + FP + FN)``,
- pixel accuracy ``TP / (TP + FN)`` (the paper's PA, eq. 3), not over background pixels.

Empty masks: a vertebra in the truth that the prediction misses scores 0.
When neither the prediction nor the truth has any foreground there is nothing
to score: Dice and IoU are NaN (not 1.0) and means skip them, reporting how
many images were scored. Pixel accuracy is NaN whenever the truth is empty.

Classification metrics come from scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as skm

from .errors import BoneScreenError
from .labels import CLASS_NAMES


def segmentation_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """True-positive, false-positive and false-negative foreground pixel counts."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise BoneScreenError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return tp, fp, fn


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks; NaN when both are empty, 0 for a missed object."""
    tp, fp, fn = segmentation_counts(pred, truth)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def iou_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two binary masks; NaN when both are empty."""
    tp, fp, fn = segmentation_counts(pred, truth)
    return _ratio(tp, tp + fp + fn)


def pixel_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """The paper's PA, ``TP / (TP + FN)`` on the vertebra; NaN when the truth is empty."""
    tp, _, fn = segmentation_counts(pred, truth)
    return _ratio(tp, tp + fn)


def _scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {"dice": _ratio(2 * tp, 2 * tp + fp + fn), "iou": _ratio(tp, tp + fp + fn), "pa": _ratio(tp, tp + fn)}


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray, levels: Sequence[int] = (1, 2, 3, 4, 5)) -> dict:
    """Dice, IoU and PA on the whole vertebra mask (label > 0) and per level id.

    Parameters
    ----------
    pred, truth : ndarray
        Label maps of the same shape (0 background, level ids elsewhere).
    levels : sequence of int
        Level ids scored separately.

    Returns
    -------
    dict
        ``{"vertebra": {...}, "levels": {id: {...}}}``; each entry has ``dice``,
        ``iou``, ``pa`` and the pixel counts ``tp``, ``fp``, ``fn``.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    out: dict = {}
    tp, fp, fn = segmentation_counts(pred > 0, truth > 0)
    out["vertebra"] = {**_scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
    out["levels"] = {}
    for lv in levels:
        tp, fp, fn = segmentation_counts(pred == lv, truth == lv)
        out["levels"][int(lv)] = {**_scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
    return out


def per_image_scores(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Dice, IoU and PA for each (prediction, truth) pair of binary masks (NaN where undefined)."""
    rows = [_scores(*segmentation_counts(p, t)) for p, t in zip(preds, truths, strict=True)]
    return {k: np.array([r[k] for r in rows], dtype=float) for k in ("dice", "iou", "pa")}


def pooled_scores(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> dict[str, float]:
    """Dice, IoU and PA from pixel counts pooled over all images."""
    tp = fp = fn = 0
    for p, t in zip(preds, truths, strict=True):
        a, b, c = segmentation_counts(p, t)
        tp, fp, fn = tp + a, fp + b, fn + c
    return _scores(tp, fp, fn)


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, min, max and count of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def accuracy(y_true: Sequence[int], proba: np.ndarray) -> float:
    """Fraction of rows whose most probable class is the true one."""
    return float(np.mean(np.asarray(y_true) == np.asarray(proba).argmax(1)))


def expected_calibration_error(y_true: Sequence[int], proba: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of class probabilities (Guo et al., ICML 2017, eq. 3).

    The top-class confidence of each sample is put in one of ``bins`` equal-width bins over (0, 1];
    ECE is the mean over bins of |accuracy - mean confidence|, weighted by the share of samples.

    Parameters
    ----------
    y_true : sequence of int
        True class indices, shape (n,).
    proba : ndarray
        Class probabilities, shape (n, k); rows sum to 1.
    bins : int
        Number of equal-width confidence bins (10 as in Guo et al.).

    Returns
    -------
    float
        ECE in [0, 1].

    Raises
    ------
    BoneScreenError
        If the shapes do not match or there are no samples.
    """
    proba = np.asarray(proba, dtype=float)
    y = np.asarray(y_true)
    if proba.ndim != 2 or len(proba) != len(y) or len(y) == 0:
        raise BoneScreenError(f"proba must have shape ({len(y)}, k) with n > 0, got {proba.shape}")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def classification_metrics(y_true: Sequence[int], proba: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> dict:
    """Accuracy, per-class precision, sensitivity, specificity and one-vs-rest AUC, macro AUC, confusion matrix.

    Parameters
    ----------
    y_true : sequence of int
        True class indices.
    proba : ndarray, shape (n, n_classes)
        Predicted probabilities; the prediction is their argmax.
    class_names : sequence of str
        Names in class-index order.
    """
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    k = len(class_names)
    if proba.ndim != 2 or proba.shape != (len(y_true), k):
        raise BoneScreenError(f"proba must have shape ({len(y_true)}, {k}), got {proba.shape}")
    y_pred = proba.argmax(1)
    labels = list(range(k))
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    precision = skm.precision_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    sensitivity = skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    per_class = {}
    aucs = []
    for i, name in enumerate(class_names):
        tn = cm.sum() - cm[i, :].sum() - cm[:, i].sum() + cm[i, i]
        fp = cm[:, i].sum() - cm[i, i]
        positives = y_true == i
        auc = float(skm.roc_auc_score(positives, proba[:, i])) if 0 < positives.sum() < len(y_true) else float("nan")
        aucs.append(auc)
        per_class[name] = {
            "precision": float(precision[i]),
            "sensitivity": float(sensitivity[i]),
            "specificity": _ratio(tn, tn + fp),
            "auc": auc,
            "support": int(positives.sum()),
        }
    finite = [a for a in aucs if np.isfinite(a)]
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_auc": float(np.mean(finite)) if finite else float("nan"),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
        "n": len(y_true),
    }


def roc_curves(y_true: Sequence[int], proba: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, dict]:
    """One-vs-rest ROC curve per class: ``{name: {"fpr": [...], "tpr": [...], "auc": float}}``."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    out = {}
    for i, name in enumerate(class_names):
        pos = y_true == i
        if not 0 < pos.sum() < len(y_true):
            continue
        fpr, tpr, _ = skm.roc_curve(pos, proba[:, i])
        out[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(skm.auc(fpr, tpr))}
    return out


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``statistic(*arrays)``.

    Parameters
    ----------
    statistic : callable
        Takes the resampled arrays (rows drawn with replacement, jointly) and returns a number.
    *arrays : ndarray
        Arrays with the same first dimension (for example ``y_true`` and ``proba``).
    n_boot : int
        Resamples.
    level : float
        Confidence level (0.95 for a 95% interval).
    seed : int
        Seed of the resampling.

    Returns
    -------
    (float, float, float)
        The statistic on the full data, and the interval's lower and upper bounds.
        Resamples on which the statistic is undefined (NaN) are skipped.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise BoneScreenError("bootstrap arrays must have the same length")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        with np.errstate(all="ignore"):
            v = statistic(*(a[idx] for a in arrays))
        if np.isfinite(v):
            values.append(v)
    point = float(statistic(*arrays))
    if not values:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return point, float(lo), float(hi)
