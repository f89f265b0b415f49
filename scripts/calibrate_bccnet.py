"""Calibrate BCC-Net's probabilities, and model its training features to flag unlike inputs; report both.

Temperature scaling (Guo et al., "On calibration of modern neural networks", ICML 2017): one scalar T
divides the logits; it is fitted by minimizing the negative log-likelihood of the per-level
probabilities (the mean over a level's crops, as the pipeline reports them) on the validation cases
recorded in the weights' JSON (``data.val_case_ids``, never trained on), read from the case sets the JSON
names (``data.root``, ``data.also``), prepared as the weights expect (HU or energy-normalized crops).
The expected calibration error (10 equal-width confidence bins) is reported before and after, on the
validation split and on held-out phantom sets; ``--write`` stores T and the figures in the weights'
JSON (``calibration``), which the Screener applies.

The features BCC-Net's classifier sees are modelled on training cases (:mod:`bonescreen.ood`); the
flag's threshold is the 99.9th percentile of a log-normal fitted to the validation levels' scores, and
how often it fires on held-out phantom levels is reported; ``--write`` stores the model beside the weights.

Run: .venv/bin/python scripts/calibrate_bccnet.py --test /work/data/test [--test DIR ...] [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from bonescreen.atomic import write_text_atomic
from bonescreen.checkpoint import load_model, weights_paths
from bonescreen.data import load_case_set
from bonescreen.data.datasets import case_input_hu
from bonescreen.labels import class_index, levels_present
from bonescreen.metrics import expected_calibration_error
from bonescreen.ood import FeatureDensity, fit_feature_density, save_feature_density
from bonescreen.pipeline.classify import crops_by_level
from bonescreen.preprocess import trained_energy_normalized
from bonescreen.weights import default_weights


@torch.inference_mode()
def level_outputs(model, hu: np.ndarray, labels: np.ndarray, spacing) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per level present, (logits (n_crops, 3), pooled features (n_crops, d)) of its crops."""
    out = []
    for _, crops in crops_by_level(hu.astype(np.float32), labels, spacing, levels_present(labels)):
        x = torch.from_numpy(crops[:, None].astype(np.float32))
        f = torch.cat([model.embed(x[i : i + 64]) for i in range(0, len(x), 64)])
        out.append((model.classifier(f).float().numpy(), f.float().numpy()))
    return out


def _input(record, energy_normalized: bool):
    """A case's CT as BCC-Net's input sees it (HU, or energy-normalized as the weights were trained), its
    level labels, spacing and class."""
    volume, labels = record.load(("levels", "spine"))
    hu = case_input_hu(volume, labels["levels"], labels.get("spine")) if energy_normalized else volume.hu
    return hu, labels["levels"], volume.spacing, record.label


def training_records(meta: dict) -> list:
    """The case sets the weights were trained on (``data.root`` and ``data.also`` of their JSON)."""
    roots = [meta["data"]["root"], *meta["data"].get("also", [])]
    return [r for root in roots for r in load_case_set(root)]


def set_cases(root, energy_normalized: bool):
    for record in load_case_set(root):
        yield _input(record, energy_normalized)


def collect(model, cases):
    """Logits and features per level, and the levels' classes."""
    logits, features, y = [], [], []
    for hu, labels, spacing, label in cases:
        for z, f in level_outputs(model, hu, labels, spacing):
            logits.append(z)
            features.append(f)
            y.append(class_index(label))
    return logits, features, np.array(y)


def level_proba(logits: list[np.ndarray], temperature: float) -> np.ndarray:
    """Per-level probabilities: the mean over a level's crops of softmax(logits / T)."""
    rows = []
    for z in logits:
        e = np.exp((z - z.max(axis=1, keepdims=True)) / temperature)
        rows.append((e / e.sum(axis=1, keepdims=True)).mean(axis=0))
    return np.array(rows)


def fit_temperature(logits: list[np.ndarray], y: np.ndarray) -> float:
    """T minimizing the per-level negative log-likelihood (searched over log T in [-3, 3])."""

    def nll(log_t: float) -> float:
        p = level_proba(logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def figures(logits, y, temperature) -> dict:
    before, after = level_proba(logits, 1.0), level_proba(logits, temperature)
    return {
        "levels": len(y),
        "accuracy": round(float((after.argmax(1) == y).mean()), 4),
        "ece_before": round(expected_calibration_error(y, before), 4),
        "ece_after": round(expected_calibration_error(y, after), 4),
        "mean_confidence_before": round(float(before.max(1).mean()), 4),
        "mean_confidence_after": round(float(after.max(1).mean()), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", type=Path, default=default_weights("classification"))
    p.add_argument("--test", type=Path, action="append", default=[], help="held-out phantom set (cases.csv)")
    p.add_argument("--train-cases", type=int, default=12, help="training cases the feature model is fitted on")
    p.add_argument("--write", action="store_true", help="store the temperature and the feature model")
    args = p.parse_args()
    model, meta = load_model(args.weights)
    normalized = trained_energy_normalized(meta)
    val_ids = set(meta["data"]["val_case_ids"])
    records = training_records(meta)
    val_records = [r for r in records if r.case_id in val_ids]
    # training cases spread over the case sets (every k-th), for the feature model
    train_records = [r for r in records if r.case_id not in val_ids]
    train_records = train_records[:: max(1, len(train_records) // args.train_cases)][: args.train_cases]
    val_logits, val_features, val_y = collect(model, (_input(r, normalized) for r in val_records))
    temperature = fit_temperature(val_logits, val_y)
    _, train_features, _ = collect(model, (_input(r, normalized) for r in train_records))
    density = fit_feature_density(np.concatenate(train_features))
    val_scores = np.array([density.level_score(f) for f in val_features])
    # the 99.9th percentile of a log-normal fitted to the validation levels' scores: 60 levels give no
    # empirical tail (their 99th percentile is their largest), a fitted one extrapolates it
    log_scores = np.log(val_scores)
    threshold = float(np.exp(log_scores.mean() + 3.09 * log_scores.std(ddof=1)))
    density = FeatureDensity(density.mean, density.precision, threshold)
    report = {
        "method": "temperature scaling (Guo et al., ICML 2017) of per-crop logits; level = mean of crop softmax",
        "temperature": round(temperature, 4),
        "fitted_on": f"validation split of the training set ({len(val_ids)} cases)",
        "validation": figures(val_logits, val_y, temperature),
        "held_out": {},
    }
    ood = {
        "method": "squared Mahalanobis distance of pooled features, mean over a level's crops (Lee et al. 2018)",
        "threshold": round(threshold, 2),
        "fitted_on": f"{len(train_records)} training cases ({sum(len(f) for f in train_features)} crops); threshold: "
        f"99.9th percentile of a log-normal fitted to the {len(val_scores)} validation levels' scores",
        "validation_scores_percentiles_50_90_99": [round(float(v), 1) for v in np.percentile(val_scores, [50, 90, 99])],
        "flagged": {},
    }
    for root in args.test:
        logits, features, y = collect(model, set_cases(root, normalized))
        report["held_out"][str(root)] = figures(logits, y, temperature)
        scores = np.array([density.level_score(f) for f in features])
        ood["flagged"][str(root)] = {
            "levels": len(scores),
            "share": round(float((scores > threshold).mean()), 4),
            "scores_percentiles_50_90_99": [round(float(v), 1) for v in np.percentile(scores, [50, 90, 99])],
        }
    print(json.dumps({"calibration": report, "ood": ood}, indent=2))
    if args.write:
        _, json_path = weights_paths(args.weights)
        doc = json.loads(json_path.read_text())
        doc["calibration"] = report
        doc["ood"] = ood
        save_feature_density(density, args.weights)
        write_text_atomic(json_path, json.dumps(doc, indent=2) + "\n")
        print(f"written to {json_path}")


if __name__ == "__main__":
    main()
