"""Honest probabilities: the expected calibration error, temperature scaling as the Screener applies it, and the
flag for crops unlike BCC-Net's training data."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from bonescreen.errors import BoneScreenError
from bonescreen.metrics import expected_calibration_error
from bonescreen.nets import create_model
from bonescreen.ood import FeatureDensity, density_path, fit_feature_density, load_feature_density, save_feature_density
from bonescreen.pipeline import Screener
from bonescreen.weights import default_weights


def test_ece_of_known_cases():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    onehot = np.eye(3)[y]
    assert expected_calibration_error(y, onehot) == 0.0  # right and certain
    # always 90 % sure, right 6 times in 10: ECE = |0.6 - 0.9| = 0.3 (one bin)
    proba = np.full((10, 3), 0.05)
    guess = np.array([0, 0, 0, 0, 1, 1, 2, 2, 0, 0])
    proba[np.arange(10), guess] = 0.9
    assert expected_calibration_error(y, proba) == pytest.approx(0.3)
    # two bins: half at 0.55 (all right), half at 0.95 (all right): (0.45 + 0.05) / 2
    proba = np.full((10, 3), 0.0)
    proba[:5, :] = [0.55, 0.45, 0.0]
    proba[5:, :] = [0.95, 0.05, 0.0]
    assert expected_calibration_error(np.zeros(10, int), proba) == pytest.approx(0.25)
    with pytest.raises(BoneScreenError):
        expected_calibration_error(y, proba[:3])


def test_temperature_sharpens_or_softens_as_stored_and_the_screener_applies_it(tmp_path, small_case):
    model = create_model("bccnet").eval()
    x = torch.randn(4, 1, 224, 224)
    with torch.inference_mode():
        p1, p_soft = model.predict_proba(x), model.predict_proba(x, 4.0)
    assert torch.all(p_soft.max(1).values <= p1.max(1).values + 1e-6)
    # the bundled weights carry their fitted temperature, and result.json says which
    screener = Screener(device="cpu")
    meta = json.loads(default_weights("classification").with_suffix(".json").read_text())
    assert screener.temperature == pytest.approx(meta["calibration"]["temperature"])
    assert screener.models()["classification"]["temperature"] == screener.temperature
    # a copy of the weights with T = 1e6: every probability becomes 1/3
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(default_weights("classification"), folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps({**meta, "calibration": {"temperature": 1e6}}))
    flat = Screener(device="cpu", cls_weights=folder).classify(small_case_volume(small_case), small_case.levels)
    for level in flat["levels"]:
        assert all(v == pytest.approx(1 / 3, abs=1e-3) for v in level["probabilities"].values())


def small_case_volume(case):
    from bonescreen.io.volume import volume_from_ijk

    return volume_from_ijk(case.hu.astype(np.float32).transpose(2, 1, 0), case.affine, "phantom", None, "phantom")


def test_feature_density_scores_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 6))
    density = fit_feature_density(train, threshold=12.0)
    near, far = density.level_score(rng.normal(size=(20, 6))), density.level_score(rng.normal(5, 1, size=(20, 6)))
    assert near == pytest.approx(6, rel=0.3) and far > 100  # E[d2] = d for the training distribution
    assert density.reason(near) is None and "unlike BCC-Net's training data" in density.reason(far)
    weights = tmp_path / "x.safetensors"
    assert save_feature_density(density, weights) == density_path(weights) == tmp_path / "x.ood.safetensors"
    loaded = load_feature_density(weights, {"ood": {"threshold": 12.0}})
    np.testing.assert_allclose(loaded.precision, density.precision)
    assert load_feature_density(weights, {}) is None  # no threshold: no flag
    (tmp_path / "x.ood.safetensors").write_bytes(b"broken")
    with pytest.raises(BoneScreenError, match="unreadable feature statistics"):
        load_feature_density(weights, {"ood": {"threshold": 12.0}})


def test_levels_unlike_the_training_data_are_flagged(small_case):
    """The bundled feature model is used; a threshold below every score flags every level and the overall call."""
    screener = Screener(device="cpu")
    volume = small_case_volume(small_case)
    result = screener.classify(volume, small_case.levels)
    assert screener.density is not None
    for level in result["levels"]:
        assert level["feature_distance"] > 0
        assert not any("unlike BCC-Net's training data" in r for r in level["reasons"])  # a phantom like its own
    d = screener.density
    screener._density = FeatureDensity(d.mean, d.precision, threshold=1e-3)
    flagged = screener.classify(volume, small_case.levels)
    assert all(any("unlike BCC-Net's training data" in r for r in lv["reasons"]) for lv in flagged["levels"])
    assert flagged["overall"]["uncertain"]
    assert any("unlike BCC-Net's training data" in r for r in flagged["overall"]["reasons"])


def test_energy_normalized_weights_on_a_spine_only_crop_say_the_energy_was_assumed(tmp_path, small_case):
    """BCC-Net weights trained on energy-normalized crops (issue "Real CT", item 7): where the scan's energy is
    unknown (no fat in view) the input assumes the header's voltage, and the overall result says so."""
    meta = json.loads(default_weights("classification").with_suffix(".json").read_text())
    meta["preprocessing"] = {**meta["preprocessing"], "energy_reference_kev": 70}
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(default_weights("classification"), folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(meta))
    screener = Screener(device="cpu", cls_weights=folder)
    assert screener.energy_normalized
    whole = screener.classify(small_case_volume(small_case), small_case.levels)
    assert not any("BCC-Net's input assumes" in r for r in whole["overall"]["reasons"])
    # nothing but the spine and muscle-like soft tissue round it: no fat, no air, so no effective energy
    no_fat = replace(small_case, hu=np.where(small_case.spine > 0, small_case.hu, 45).astype(np.int16))
    result = screener.classify(small_case_volume(no_fat), no_fat.levels)
    assert result["density_calibration"]["effective_energy_kev"] is None
    assert any("BCC-Net's input assumes 120 kVp" in r for r in result["overall"]["reasons"])
    assert result["overall"]["uncertain"] and len(result["levels"]) == 5
