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
    from BoneScreenLib.logic import add_ct_volume_node

    return add_ct_volume_node(scene, case.hu, case.spacing, "phantom CT", origin=(123.0, -45.0, 678.0))


@pytest.fixture
def add_volume():
    """``add_volume(scene, case)``: the phantom as a scalar volume node with a non-identity IJK-to-RAS (LPS axes)."""
    return _add_volume


def _load_file(scene, path):
    """A scalar volume node read from ``path`` as Slicer's Add Data reads a file (its archetype storage node)."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", path.name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


@pytest.fixture
def load_file():
    """``load_file(scene, path)``: a volume file read into a node as Slicer's Add Data reads it."""
    return _load_file
