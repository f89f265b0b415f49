"""``bonescreen reproduce``: the paper's experiments on the synthetic benchmark.

Protocol (the paper's Table 2, scaled down by ``--quick``): a phantom benchmark
split by case (train 150 = 50 per class, test 63 = 21 per class, disjoint seeds);
MS-Net scored per slice on 12 test slices per case (the paper's 756 images);
BCC-Net and the Table 5 ablations trained on 144 augmented crops per training
case (21,600) and tested on 48 augmented crops per test case (3,024), the test
crops cut with MS-Net's masks as in the paper; the HU-threshold baseline on the
same levels. Writes Markdown and CSV tables and PNG figures with the paper's
published figures beside ours.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path, write_text_atomic
from .checkpoint import load_model
from .data import ClassificationCrops, load_case_set
from .device import resolve_device
from .evaluate import evaluate_classification, evaluate_segmentation, hu_baseline_metrics
from .figures import confusion_figure, distribution_figure, pie_axes, plt, roc_figure, save_figure
from .hu import HUThresholds, hu_category, trabecular_hu
from .io.writers import write_labels_nifti
from .labels import CLASS_NAMES, CLASS_TITLES, class_index
from .phantom import PhantomConfig
from .phantom.write import write_phantom_set
from .pipeline import Screener
from .train import TrainConfig, train

#: The paper's published results (Tables 3, 4 and 5).
PAPER = {
    "table3": {"dice": 0.9992, "iou": 0.9984, "pa": 0.9991},
    "table4": {"normal": (0.8057, 0.9715), "low_bone_mass": (0.6621, 0.8320), "osteoporosis": (0.8255, 0.9467)},
    "table5": {
        "densenet121": (0.5498, 0.6842),
        "densenet-1": (0.6581, 0.8120),
        "densenet-2": (0.6412, 0.7923),
        "bccnet": (0.7665, 0.9167),
    },
}
ARCHS = ("densenet121", "densenet-1", "densenet-2", "bccnet")


@dataclass
class Plan:
    """Sizes of one reproduction run."""

    train_cases: int = 150
    test_cases: int = 63
    seg_slices_per_case: int = 12
    train_crops_per_case: int = 144
    test_crops_per_case: int = 48
    epochs: int = 10
    batch_size: int = 64
    thickness: float | None = None

    @classmethod
    def quick(cls) -> Plan:
        """A CI-sized run: a few cases, one epoch, 3 mm slices, a few crops (DenseNet-121 trains at about 1 s a
        crop on a 2-core AVX2 CPU: 16 crops per case took two of the run's six minutes there)."""
        return cls(
            train_cases=6,
            test_cases=3,
            seg_slices_per_case=4,
            train_crops_per_case=6,
            test_crops_per_case=4,
            epochs=1,
            batch_size=16,
            thickness=3.0,
        )


Log = Callable[[str], None]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _hu_baseline(records, pred: str, thresholds: HUThresholds) -> dict:
    """The HU-threshold call on each level of the test cases, with MS-Net's masks."""
    from .hu import body_from_levels

    y, calls, hus = [], [], []
    for rec in records:
        volume, labels = rec.load(("levels", pred))
        body = body_from_levels(labels[pred], volume.spacing)
        for m in trabecular_hu(volume.hu, body, volume.spacing).values():
            if m["mean_hu"] is None:
                continue
            y.append(class_index(rec.label))
            calls.append(class_index(hu_category(m["mean_hu"], thresholds)))
            hus.append(m["mean_hu"])
    return hu_baseline_metrics(np.array(y), np.array(hus), np.array(calls))


def reproduce(
    out: str | os.PathLike,
    quick: bool = False,
    device: str = "auto",
    seg_weights: str | None = None,
    seed: int = 0,
    log: Log = print,
) -> dict:
    """Run the reproduction and write ``OUT/tables.md``, CSVs, figures and ``OUT/reproduce.json``."""
    out = Path(out)
    plan = Plan.quick() if quick else Plan()
    dev = resolve_device(device)
    config = PhantomConfig(thickness=plan.thickness)
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    for folder, n, set_seed in ((train_dir, plan.train_cases, 3000 + seed), (test_dir, plan.test_cases, 4000 + seed)):
        if not (folder / "cases.csv").is_file():
            log(f"writing {n} phantom cases to {folder}")
            write_phantom_set(folder, n, set_seed, "nifti", config)
    train_records, test_records = load_case_set(train_dir), load_case_set(test_dir)

    # segmentation (Table 3, Figure 5): the bundled MS-Net unless other weights are given
    screener = Screener(seg_weights=seg_weights, device=str(dev))
    seg_model = screener.model("segmentation")
    log("scoring MS-Net on the test slices")
    seg = evaluate_segmentation(seg_model, test_records, dev, plan.seg_slices_per_case)
    save_figure(
        distribution_figure(seg.pop("_distributions"), "MS-Net on test slices (Figure 5)"),
        out / "figure5_segmentation.png",
    )
    # MS-Net masks of the test cases, for the classifier's test crops (as the paper)
    log("segmenting the test cases with the pipeline")
    for rec in test_records:
        path = rec.folder / "pred_levels.nii.gz"
        if not path.is_file():
            volume, _ = rec.load(("levels",))
            write_labels_nifti(volume, screener.segment(volume).labels, path)

    # classification (Tables 4 and 5, Figures 6 and 7)
    train_set = ClassificationCrops(train_records, plan.train_crops_per_case, augment=True, seed=seed)
    test_set_kwargs = {
        "crops_per_case": plan.test_crops_per_case,
        "augment": True,
        "seed": seed + 1,
        "mask": "pred_levels",
    }
    table5, details = [], {}
    for arch in ARCHS:
        folder = out / "weights" / arch
        if not (folder / "model.json").is_file() or load_model(folder)[1].get("epoch", -1) < plan.epochs - 1:
            log(f"training {arch} ({len(train_set)} crops per epoch, {plan.epochs} epochs)")
            cfg = TrainConfig(arch, epochs=plan.epochs, batch_size=plan.batch_size, seed=seed, device=str(dev))
            for _ in train(cfg, train_set, folder, meta={"data": {"reproduce": str(train_dir)}}):
                pass
        model, _ = load_model(folder, dev)
        log(f"testing {arch}")
        res = evaluate_classification(
            model,
            test_records,
            dev,
            augment=True,
            seed=seed + 1,
            crops_per_case=test_set_kwargs["crops_per_case"],
            mask="pred_levels",
        )
        details[arch] = res
        pc = res["per_crop"]
        table5.append(
            {
                "network": arch,
                "accuracy": pc["accuracy"],
                "auc": pc["macro_auc"],
                "paper_accuracy": PAPER["table5"][arch][0],
                "paper_auc": PAPER["table5"][arch][1],
            }
        )
    bcc = details["bccnet"]
    save_figure(roc_figure(bcc.pop("_roc"), "BCC-Net ROC (Figure 6)"), out / "figure6_roc.png")
    save_figure(confusion_figure(bcc["per_crop"]["confusion_matrix"]), out / "figure7_confusion.png")
    for arch in ARCHS[:-1]:
        details[arch].pop("_roc", None)
    baseline = _hu_baseline(test_records, "pred_levels", HUThresholds())
    table5.append(
        {
            "network": "HU thresholds (110/160 HU)",
            "accuracy": baseline["accuracy"],
            "auc": baseline["macro_auc"],
            "paper_accuracy": "",
            "paper_auc": "",
        }
    )
    table4 = [
        {
            "class": name,
            "precision": bcc["per_crop"]["per_class"][name]["precision"],
            "auc": bcc["per_crop"]["per_class"][name]["auc"],
            "paper_precision": PAPER["table4"][name][0],
            "paper_auc": PAPER["table4"][name][1],
            "hu_precision": baseline["per_class"][name]["precision"],
            "hu_auc": baseline["per_class"][name]["auc"],
        }
        for name in CLASS_NAMES
    ]
    pi = seg["per_image"]
    table3 = [
        {
            "module": "MS-Net (bundled weights)",
            "dice": pi["dice"]["mean"],
            "iou": pi["iou"]["mean"],
            "pa": pi["pa"]["mean"],
            "images": pi["dice"]["n"],
            "paper_dice": PAPER["table3"]["dice"],
            "paper_iou": PAPER["table3"]["iou"],
            "paper_pa": PAPER["table3"]["pa"],
        }
    ]

    # Figure 9: pie charts of one test case per class
    screener = Screener(seg_weights=seg_weights, cls_weights=str(out / "weights" / "bccnet"), device=str(dev))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, name in zip(axes, CLASS_NAMES, strict=True):
        rec = next((r for r in test_records if r.label == name), None)
        if rec is None:
            ax.axis("off")
            continue
        volume, labels = rec.load(("levels", "pred_levels"))
        result = screener.classify(volume, labels["pred_levels"]) if labels["pred_levels"].any() else None
        if result:
            pie_axes(ax, result["overall"]["probabilities"], f"{rec.case_id}: truth {CLASS_TITLES[name]}")
    fig.suptitle("Figure 9: overall probabilities (L1-L2) of one test case per class")
    save_figure(fig, out / "figure9_pies.png")

    for name, rows in (("table3_segmentation", table3), ("table4_classification", table4), ("table5_ablation", table5)):
        _write_csv(out / f"{name}.csv", rows)
    write_text_atomic(out / "tables.md", _markdown(plan, table3, table4, table5, baseline, quick))
    summary = {
        "plan": plan.__dict__,
        "device": str(dev),
        "segmentation": seg,
        "classification": details,
        "hu_baseline": baseline,
        "table3": table3,
        "table4": table4,
        "table5": table5,
    }
    write_text_atomic(out / "reproduce.json", json.dumps(summary, indent=2, default=float) + "\n")
    log(f"tables written to {out / 'tables.md'}")
    return summary


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) and np.isfinite(v) else ("n/a" if isinstance(v, float) else str(v))


def _markdown(plan: Plan, table3, table4, table5, baseline, quick: bool) -> str:
    lines = ["# BoneScreen: the paper's experiments on the synthetic phantom benchmark", ""]
    if quick:
        lines += [
            "**Quick run** (CI-sized: a few cases, one epoch): the figures test the machinery, not the method.",
            "",
        ]
    lines += [
        f"Train {plan.train_cases} cases, test {plan.test_cases} cases (disjoint phantom seeds); "
        f"{plan.train_crops_per_case} training and {plan.test_crops_per_case} test crops per case; "
        f"{plan.epochs} epochs. Test crops are cut with MS-Net's masks, as in the paper.",
        "",
    ]
    lines += [
        "## Table 3: segmentation (per slice, on the vertebra)",
        "",
        "| module | Dice | IoU | PA | images | paper Dice | paper IoU | paper PA |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table3:
        lines.append(
            "| "
            + " | ".join(
                _fmt(r[k]) for k in ("module", "dice", "iou", "pa", "images", "paper_dice", "paper_iou", "paper_pa")
            )
            + " |"
        )
    lines += [
        "",
        "## Table 4: BCC-Net per class (per crop), with the HU-threshold baseline (per level)",
        "",
        "| class | precision | AUC | paper precision | paper AUC | HU precision | HU AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table4:
        lines.append(
            "| "
            + " | ".join(
                _fmt(r[k])
                for k in ("class", "precision", "auc", "paper_precision", "paper_auc", "hu_precision", "hu_auc")
            )
            + " |"
        )
    lines += [
        "",
        "## Table 5: networks (accuracy and macro AUC per crop; HU baseline per level)",
        "",
        "| network | accuracy | AUC | paper accuracy | paper AUC |",
        "|---|---|---|---|---|",
    ]
    for r in table5:
        lines.append(
            "| " + " | ".join(_fmt(r[k]) for k in ("network", "accuracy", "auc", "paper_accuracy", "paper_auc")) + " |"
        )
    lines += [
        "",
        f"HU baseline: {baseline['n']} levels, thresholds 110 / 160 HU (Pickhardt 2013).",
        "",
        "Figures: figure5_segmentation.png, figure6_roc.png, figure7_confusion.png, figure9_pies.png.",
        "",
    ]
    return "\n".join(lines)


def run_cli(out: Path, quick: bool, device: str, seg_weights: Path | None, seed: int) -> int:
    """Entry point of ``bonescreen reproduce``."""
    torch.manual_seed(seed)
    reproduce(out, quick, device, str(seg_weights) if seg_weights else None, seed)
    print((out / "tables.md").read_text())
    return 0
