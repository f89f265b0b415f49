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


def _add_volume(scene, case):
    """The phantom as a scalar volume node with a non-identity IJK-to-RAS (LPS axes, offset origin)."""
    import numpy as np
    import slicer
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom CT")
    dz, dy, dx = case.spacing
    node.SetSpacing(dx, dy, dz)
    node.SetOrigin(123.0, -45.0, 678.0)
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 0, -1)
    m.SetElement(1, 1, -1)
    node.SetIJKToRASDirectionMatrix(m)
    slicer.util.updateVolumeFromArray(node, np.maximum(case.hu, -1024).astype(np.int16))  # (k, j, i) = (z, y, x)
    return node


@pytest.fixture
def add_volume():
    """``add_volume(scene, case)``: the phantom as a scalar volume node with a non-identity IJK-to-RAS (LPS axes)."""
    return _add_volume
