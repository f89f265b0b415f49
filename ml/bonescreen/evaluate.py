"""Evaluate trained networks on a labelled set: segmentation per slice, classification per crop and per case."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn import metrics as skm
from torch.utils.data import DataLoader

from .atomic import write_text_atomic
from .data import ClassificationCrops, SegmentationSlices
from .data.cases import CaseRecord
from .figures import confusion_figure, distribution_figure, roc_figure, save_figure
from .labels import CLASS_NAMES, class_index, levels_present
from .metrics import (
    accuracy,
    bootstrap_ci,
    classification_metrics,
    per_image_scores,
    pooled_scores,
    roc_curves,
    segmentation_metrics,
    summarize,
)

Progress = Callable[[str, int, int], None] | None


@torch.inference_mode()
def _predict(model: torch.nn.Module, dataset, device: torch.device, batch: int, fn) -> list[np.ndarray]:
    out = []
    for x, _ in DataLoader(dataset, batch_size=batch):
        out.append(fn(model, x.to(device)).float().cpu().numpy())
    return out


def evaluate_segmentation(
    model,
    records: list[CaseRecord],
    device: torch.device,
    slices_per_case: int = 12,
    batch: int = 4,
    progress: Progress = None,
) -> dict:
    """MS-Net mark images against the truth on evenly spread slices of each case (no augmentation)."""
    data = SegmentationSlices(
        records,
        slices_per_case,
        augment=False,
        progress=(lambda d, t: progress("loading", d, t)) if progress else None,
        context=getattr(model, "in_channels", 1) == 3,
    )
    preds = np.concatenate(_predict(model, data, device, batch, lambda m, x: m(x)))[:, 0] > 0.5
    truths = data.marks.astype(bool)
    per = per_image_scores(list(preds), list(truths))
    return {
        "images": len(data),
        "images_with_vertebra": int(truths.any(axis=(1, 2)).sum()),
        "per_image": {k: summarize(v) for k, v in per.items()},
        "pooled": pooled_scores(list(preds), list(truths)),
        "_distributions": per,
    }


def evaluate_classification(
    model,
    records: list[CaseRecord],
    device: torch.device,
    crops_per_case: int = 24,
    augment: bool = False,
    batch: int = 32,
    seed: int = 0,
    progress: Progress = None,
    mask: str = "levels",
    energy_normalized: bool = False,
) -> dict:
    """BCC-Net on crops of each case's level slices; per crop and per case (mean probability).

    ``mask`` names the level map that cuts the crops (``pred_levels`` for MS-Net's masks);
    ``energy_normalized`` prepares them as weights trained so expect
    (:class:`~bonescreen.data.ClassificationCrops`).
    """
    data = ClassificationCrops(
        records,
        crops_per_case,
        mask=mask,
        augment=augment,
        seed=seed,
        progress=(lambda d, t: progress("loading", d, t)) if progress else None,
        energy_normalized=energy_normalized,
    )
    proba = np.concatenate(_predict(model, data, device, batch, lambda m, x: m.predict_proba(x)))
    y = np.array([data.labels[p] for p in data.items])
    per_crop = classification_metrics(y, proba)
    acc = bootstrap_ci(accuracy, y, proba, seed=seed)
    auc = bootstrap_ci(lambda a, p: classification_metrics(a, p)["macro_auc"], y, proba, n_boot=200, seed=seed)
    by_case: dict[str, list[np.ndarray]] = defaultdict(list)
    case_label = {}
    for p_row, item in zip(proba, data.items, strict=True):
        case_id = data.keys[item][0]
        by_case[case_id].append(p_row)
        case_label[case_id] = data.labels[item]
    ids = sorted(by_case)
    case_proba = np.array([np.mean(by_case[c], axis=0) for c in ids])
    case_y = np.array([case_label[c] for c in ids])
    per_crop["accuracy_ci95"] = list(acc[1:])
    per_crop["macro_auc_ci95"] = list(auc[1:])
    return {
        "per_crop": per_crop,
        "per_case": classification_metrics(case_y, case_proba),
        "_roc": roc_curves(y, proba),
    }


def write_evaluation(result: dict, out: str | os.PathLike) -> Path:
    """Write ``metrics.json`` and the figures (ROC, confusion matrix, metric distributions) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if "segmentation" in result:
        seg = result["segmentation"]
        save_figure(distribution_figure(seg.pop("_distributions")), out / "segmentation_distribution.png")
    if "classification" in result:
        cls = result["classification"]
        save_figure(roc_figure(cls.pop("_roc")), out / "roc.png")
        save_figure(confusion_figure(cls["per_crop"]["confusion_matrix"], CLASS_NAMES), out / "confusion_matrix.png")
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=2, default=_nan_safe) + "\n")
    return out / "metrics.json"


def _nan_safe(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


def levels_named_right(labels: np.ndarray, truth: np.ndarray) -> list[bool]:
    """Per true level (ascending id), whether it is named right: most of its voxels that ``labels`` hold carry its
    id. ``labels`` and ``truth`` are uint8 (z, y, x) level maps (0, 1..5 = L1..L5)."""
    named = []
    for lv in levels_present(truth):
        pred = labels[truth == lv]
        pred = pred[pred > 0]
        named.append(bool(pred.size) and int(np.bincount(pred).argmax()) == lv)
    return named


def evaluate_pipeline(screener, records: list[CaseRecord], progress: Progress = None) -> dict:
    """The whole pipeline on each case: 3-D segmentation, level naming, per-level and per-case classification.

    Segmentation is scored on the lumbar vertebrae (foreground: the truth levels L1-L5 against the
    predicted L1-L5, whatever their names) and per level. A vertebra counts as named correctly when
    most of its predicted voxels carry its true level id. Classification is scored per level and per
    case (overall), for BCC-Net and for the HU-threshold baseline.
    """
    seg_rows, level_rows, case_rows = [], [], []
    for n, rec in enumerate(records):
        volume, truth = rec.load(("levels",))
        seg = screener.segment(volume)
        m = segmentation_metrics(seg.labels, truth["levels"])
        named = levels_named_right(seg.labels, truth["levels"])
        seg_rows.append(
            {
                "case_id": rec.case_id,
                "dice": m["vertebra"]["dice"],
                "iou": m["vertebra"]["iou"],
                "pa": m["vertebra"]["pa"],
                "levels_named": int(sum(named)),
                "levels_true": len(named),
                "per_level_dice": {lv: v["dice"] for lv, v in m["levels"].items()},
                "rule": seg.rule,
            }
        )
        cls_idx = class_index(rec.label)
        if seg.labels.any():
            result = screener.classify(volume, seg.labels, names_certain=seg.certain, mask_checked=False)
            for lv in result["levels"]:
                level_rows.append(
                    {
                        "case_id": rec.case_id,
                        "level": lv["name"],
                        "y": cls_idx,
                        "proba": [lv["probabilities"][c] for c in CLASS_NAMES],
                        "hu": lv["trabecular_hu"],
                        "hu_category": lv["hu_category"],
                        "true_hu": _float_or_none(rec.row.get(f"trabecular_hu_{lv['name']}")),
                    }
                )
            o = result["overall"]
            if o["probabilities"] is not None:  # None: no overall call (every level's labels off the bone)
                case_rows.append(
                    {
                        "case_id": rec.case_id,
                        "y": cls_idx,
                        "proba": [o["probabilities"][c] for c in CLASS_NAMES],
                        "hu": o["trabecular_hu"],
                        "hu_category": o["hu_category"],
                        "uncertain": o["uncertain"],
                    }
                )
        if progress:
            progress("cases", n + 1, len(records))

    def cls_block(rows: list[dict]) -> dict:
        if not rows:
            return {}
        y = np.array([r["y"] for r in rows])
        proba = np.array([r["proba"] for r in rows])
        net = classification_metrics(y, proba)
        acc_ci = bootstrap_ci(accuracy, y, proba)
        net["accuracy_ci95"] = list(acc_ci[1:])
        hu = np.array([r["hu"] if r["hu"] is not None else np.nan for r in rows], dtype=float)
        calls = np.array([class_index(r["hu_category"]) if r["hu_category"] else -1 for r in rows])
        baseline = hu_baseline_metrics(y, hu, calls)
        return {"bccnet": net, "hu_threshold": baseline, "_roc": roc_curves(y, proba)}

    hu_errors = np.array(
        [r["hu"] - r["true_hu"] for r in level_rows if r["hu"] is not None and r["true_hu"] is not None], dtype=float
    )
    dice = np.array([r["dice"] for r in seg_rows], dtype=float)
    named = sum(r["levels_named"] for r in seg_rows)
    total = sum(r["levels_true"] for r in seg_rows)
    return {
        "cases": len(records),
        "segmentation": {
            "dice": summarize(dice),
            "iou": summarize(np.array([r["iou"] for r in seg_rows], dtype=float)),
            "pa": summarize(np.array([r["pa"] for r in seg_rows], dtype=float)),
            "levels_named_correctly": named,
            "levels_total": total,
            "naming_accuracy": named / total if total else float("nan"),
            "per_case": seg_rows,
        },
        "trabecular_hu_error": {
            "bias": float(hu_errors.mean()) if hu_errors.size else float("nan"),
            "mae": float(np.abs(hu_errors).mean()) if hu_errors.size else float("nan"),
            "levels": int(hu_errors.size),
        },
        "per_level": cls_block(level_rows),
        "per_case": cls_block(case_rows),
    }


def _float_or_none(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def hu_baseline_metrics(y: np.ndarray, hu: np.ndarray, calls: np.ndarray) -> dict:
    """Accuracy, per-class precision and one-vs-rest AUC of the HU-threshold call.

    ``calls`` are the class indices the thresholds gave (-1 where there was no measurement).
    The AUC scores are the HU for normal, minus the HU for osteoporosis, and for low bone mass the
    closeness to the middle of its band (135 HU, between the 110 and 160 HU thresholds).
    """
    y, hu, calls = np.asarray(y), np.asarray(hu, dtype=float), np.asarray(calls)
    ok = np.isfinite(hu)
    scores = {"normal": hu, "low_bone_mass": -np.abs(hu - 135.0), "osteoporosis": -hu}
    per_class = {}
    for i, name in enumerate(CLASS_NAMES):
        positives = y[ok] == i
        said = calls == i
        precision = float(np.sum(said & (y == i)) / said.sum()) if said.any() else float("nan")
        auc = float(skm.roc_auc_score(positives, scores[name][ok])) if 0 < positives.sum() < ok.sum() else float("nan")
        per_class[name] = {"precision": precision, "auc": auc}
    aucs = [v["auc"] for v in per_class.values() if np.isfinite(v["auc"])]
    return {
        "n": len(y),
        "accuracy": float(np.mean(calls == y)) if len(y) else float("nan"),
        "per_class": per_class,
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
    }
