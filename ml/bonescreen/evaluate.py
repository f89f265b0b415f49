"""Evaluate trained networks on a labelled set: segmentation per slice, classification per crop and per case."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .atomic import write_text_atomic
from .data import ClassificationCrops, SegmentationSlices
from .data.cases import CaseRecord
from .figures import confusion_figure, distribution_figure, roc_figure, save_figure
from .labels import CLASS_NAMES
from .metrics import bootstrap_ci, classification_metrics, per_image_scores, pooled_scores, roc_curves, summarize

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
        records, slices_per_case, augment=False, progress=(lambda d, t: progress("loading", d, t)) if progress else None
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
) -> dict:
    """BCC-Net on crops of each case's level slices; per crop and per case (mean probability)."""
    data = ClassificationCrops(
        records,
        crops_per_case,
        augment=augment,
        seed=seed,
        progress=(lambda d, t: progress("loading", d, t)) if progress else None,
    )
    proba = np.concatenate(_predict(model, data, device, batch, lambda m, x: m.predict_proba(x)))
    y = np.array([data.labels[p] for p in data.items])
    per_crop = classification_metrics(y, proba)
    acc = bootstrap_ci(lambda a, p: float(np.mean(a == p.argmax(1))), y, proba, seed=seed)
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
