"""Crops unlike BCC-Net's training data: the Mahalanobis distance of its pooled features.

BCC-Net's probabilities are calibrated on phantoms like those it was trained on; on a crop that looks
like none of them (a real scan's texture, a mask that cut the body badly, another anatomy) they mean
little however confident they are. Following Lee et al. (NeurIPS 2018, "A simple unified framework
for detecting out-of-distribution samples"), the features the linear classifier sees
(:meth:`~bonescreen.nets.DenseNet.embed`) are modelled as one Gaussian fitted on training crops
(Ledoit-Wolf shrunk covariance, scikit-learn); a level's score is the mean squared Mahalanobis
distance of its crops. The threshold is the 99.9th percentile of a log-normal fitted to the
validation split's level scores (60 levels have no empirical tail); how often it fires on held-out
phantoms is measured by ``scripts/calibrate_bccnet.py`` and stated in the model card. Stored beside
the weights as ``NAME.ood.safetensors`` (mean, precision) with the threshold and its provenance in the
weights' JSON (``ood``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from .atomic import atomic_path
from .errors import BoneScreenError
from .io.folders import file_problem


@dataclass(frozen=True)
class FeatureDensity:
    """A Gaussian model of BCC-Net's pooled features on its training data.

    Attributes
    ----------
    mean : ndarray
        float64 (d,) feature mean.
    precision : ndarray
        float64 (d, d) inverse covariance.
    threshold : float
        Level score (mean squared Mahalanobis distance of its crops) above which a level is flagged.
    """

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row of ``features`` (n, d)."""
        diff = np.asarray(features, dtype=np.float64) - self.mean
        return np.einsum("nd,de,ne->n", diff, self.precision, diff)

    def level_score(self, features: np.ndarray) -> float:
        """A level's score: the mean of its crops' squared distances."""
        return float(self.scores(features).mean())

    def reason(self, score: float) -> str | None:
        """The flag's text when ``score`` is above the threshold, else None."""
        if score <= self.threshold:
            return None
        return (
            f"its crops are unlike BCC-Net's training data (feature distance {score:.0f}, above the "
            f"{self.threshold:.0f} that phantom levels like its training data stay under): the probabilities "
            "may not hold"
        )


def density_path(weights: str | os.PathLike) -> Path:
    """``NAME.ood.safetensors`` beside ``NAME.safetensors`` (or ``model.ood.safetensors`` in a folder).

    ``weights`` is any form :func:`~bonescreen.checkpoint.weights_paths` takes (folder, ``.safetensors``, ``.json``).
    """
    from .checkpoint import weights_paths

    return weights_paths(weights)[0].with_suffix(".ood.safetensors")


def fit_feature_density(features: np.ndarray, threshold: float = np.inf) -> FeatureDensity:
    """Fit the Gaussian on training features (n, d) with Ledoit-Wolf shrinkage (scikit-learn)."""
    from sklearn.covariance import LedoitWolf

    fit = LedoitWolf().fit(np.asarray(features, dtype=np.float64))
    return FeatureDensity(fit.location_, fit.precision_, float(threshold))


def save_feature_density(density: FeatureDensity, weights: str | os.PathLike) -> Path:
    """Write mean and precision beside the weights (atomically); the threshold goes in the weights' JSON."""
    path = density_path(weights)
    with atomic_path(path) as tmp:
        save_file({"mean": density.mean, "precision": density.precision}, str(tmp))
    return path


def load_feature_density(weights: str | os.PathLike, meta: dict) -> FeatureDensity | None:
    """The density stored beside the weights, with the threshold from their JSON; None when there is none.

    Raises
    ------
    BoneScreenError
        If the file exists but cannot be read.
    """
    path = density_path(weights)
    threshold = meta.get("ood", {}).get("threshold")
    if not os.path.lexists(path) or threshold is None:  # weights without statistics: no check, as documented
        return None
    why = file_problem(path)
    if why is not None:  # something stands there and does not read: said, not taken for absent (helper-94)
        raise BoneScreenError(f"unreadable feature statistics ({why})", path)
    try:
        arrays = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise BoneScreenError(f"unreadable feature statistics ({exc})", path) from None
    return FeatureDensity(arrays["mean"], arrays["precision"], float(threshold))
