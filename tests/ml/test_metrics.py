"""Metrics agree with scikit-learn and treat empty masks explicitly."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from bonescreen.metrics import (
    bootstrap_ci,
    classification_metrics,
    dice_score,
    iou_score,
    per_image_scores,
    pixel_accuracy,
    pooled_scores,
    roc_curves,
    segmentation_metrics,
)


@pytest.mark.parametrize("seed", range(5))
def test_pixel_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    pred = rng.random((40, 50)) > 0.6
    truth = rng.random((40, 50)) > 0.5
    assert dice_score(pred, truth) == pytest.approx(skm.f1_score(truth.ravel(), pred.ravel()))
    assert iou_score(pred, truth) == pytest.approx(skm.jaccard_score(truth.ravel(), pred.ravel()))
    assert pixel_accuracy(pred, truth) == pytest.approx(skm.recall_score(truth.ravel(), pred.ravel()))


def test_empty_masks():
    empty = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    assert dice_score(empty, full) == 0.0  # a missed vertebra is a miss
    assert iou_score(empty, full) == 0.0
    assert pixel_accuracy(empty, full) == 0.0
    assert math.isnan(dice_score(empty, empty))  # nothing to score: NaN, not 1.0
    assert math.isnan(iou_score(empty, empty))
    assert dice_score(full, empty) == 0.0


def test_per_level_and_pooled():
    truth = np.zeros((2, 10, 10), np.uint8)
    truth[0, 2:5, 2:5] = 1
    truth[1, 5:9, 5:9] = 2
    pred = truth.copy()
    pred[1] = 0  # level 2 missed entirely
    m = segmentation_metrics(pred, truth, levels=(1, 2, 3))
    assert m["levels"][1]["dice"] == 1.0
    assert m["levels"][2]["dice"] == 0.0
    assert math.isnan(m["levels"][3]["dice"])
    assert m["vertebra"]["dice"] == pytest.approx(2 * 9 / (2 * 9 + 16))
    per = per_image_scores(list(pred > 0), list(truth > 0))
    assert per["dice"].tolist() == [1.0, 0.0]
    assert pooled_scores(list(pred > 0), list(truth > 0))["dice"] == pytest.approx(m["vertebra"]["dice"])


@pytest.mark.parametrize("seed", range(3))
def test_classification_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + np.eye(3)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, proba)
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    cm = skm.confusion_matrix(y, pred)
    assert m["confusion_matrix"] == cm.tolist()
    for i, name in enumerate(m["class_names"]):
        pc = m["per_class"][name]
        assert pc["precision"] == pytest.approx(skm.precision_score(y, pred, labels=[i], average="macro"))
        assert pc["sensitivity"] == pytest.approx(skm.recall_score(y, pred, labels=[i], average="macro"))
        tn = cm.sum() - cm[i].sum() - cm[:, i].sum() + cm[i, i]
        assert pc["specificity"] == pytest.approx(tn / (tn + cm[:, i].sum() - cm[i, i]))
        assert pc["auc"] == pytest.approx(skm.roc_auc_score(y == i, proba[:, i]))
    assert m["macro_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    curves = roc_curves(y, proba)
    assert set(curves) == set(m["class_names"])


def test_bootstrap_ci_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.8, y, 1 - y)
    point, lo, hi = bootstrap_ci(lambda a, b: float(np.mean(a == b)), y, pred, n_boot=500)
    assert lo < point < hi
    assert 0.7 < lo and hi < 0.9
    assert hi - lo < 0.12
