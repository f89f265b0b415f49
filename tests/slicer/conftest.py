"""The Slicer module's Logic runs headless on PyPI's slicer-core (real MRML nodes, no Slicer application)."""

import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "slicer_extension" / "BoneScreen"
sys.path.insert(0, str(MODULE_DIR))


@pytest.fixture
def scene():
    import slicer

    return slicer.vtkMRMLScene()
