"""report.png always shows the mask: a sagittal and axial views, also when no lumbar level was found; one slice
gets the axial view only; no panel is left empty."""

from __future__ import annotations

import numpy as np
import pytest

from bonescreen.figures import plt
from bonescreen.hu import HUThresholds
from bonescreen.pipeline.screener import no_lumbar_result
from bonescreen.report import report_figure


def _volume(nz: int):
    hu = np.full((nz, 96, 96), 40.0, np.float32)
    vertebrae = np.zeros(hu.shape, np.uint8)
    vertebrae[:, 40:60, 40:60] = 6  # T12 only: nothing lumbar
    hu[vertebrae > 0] = 250.0
    return hu, vertebrae


def _panels(fig) -> list[str]:
    """What each axes shows: images (with the mask drawn over them), bars, a pie, text; '' when empty."""
    kinds = []
    for ax in fig.axes:
        if ax.images:
            overlay = ax.images[-1].get_array()
            kinds.append("mask" if np.asarray(overlay).any() else "image without mask")
        elif ax.patches:
            kinds.append("chart")
        elif ax.texts:
            kinds.append("text")
        else:
            kinds.append("")
    return kinds


@pytest.mark.parametrize(("nz", "views"), [(12, 2), (1, 1)])
def test_no_lumbar_level_still_shows_what_was_found(nz, views):
    hu, vertebrae = _volume(nz)
    result = no_lumbar_result(HUThresholds(), ["vertebrae found: T12 (none lumbar)"])
    fig = report_figure(hu, np.zeros_like(vertebrae), (2.0, 1.0, 1.0), result, "T12 only", vertebrae=vertebrae)
    kinds = _panels(fig)
    assert "" not in kinds and "image without mask" not in kinds, kinds
    assert kinds.count("mask") == views  # sagittal and axial; one slice: axial only
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "found: T12" in text and "no lumbar level" in text
    plt.close(fig)
