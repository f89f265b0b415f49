"""Shared fixtures: paths to the real CT in ../shared/data and small phantom cases."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the real CT data folder {SHARED_DATA} is missing (it ships beside the project as ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_case():
    """One phantom case with 3 mm slices (about 80 slices)."""
    from bonescreen.phantom import PhantomConfig, make_case

    return make_case(seed=123, index=0, config=PhantomConfig(thickness=3.0))


@pytest.fixture(scope="session")
def small_case_files(tmp_path_factory, small_case):
    """``small_case`` written both as NIfTI and as a DICOM series."""
    from bonescreen.phantom.write import write_case

    root = tmp_path_factory.mktemp("phantom_case")
    write_case(small_case, root / "nifti", "nifti")
    write_case(small_case, root / "dicom", "dicom")
    return root


@pytest.fixture(scope="session")
def small_set(tmp_path_factory):
    """A labelled phantom set of three cases (one per class) with 3 mm slices."""
    from bonescreen.phantom import PhantomConfig
    from bonescreen.phantom.write import write_phantom_set

    root = tmp_path_factory.mktemp("phantom_set")
    write_phantom_set(root, 3, seed=7, config=PhantomConfig(thickness=3.0))
    return root


@pytest.fixture(scope="session")
def tiny_train_cls():
    """``(data, out, epochs) -> list``: the arguments of a ``train-cls`` run small enough for the CPU tests."""

    def args(data, out, epochs: int) -> list[str]:
        return [
            "train-cls",
            str(data),
            "--out",
            str(out),
            "--epochs",
            str(epochs),
            "--batch-size",
            "8",
            "--crops-per-case",
            "8",
            "--val-fraction",
            "0.34",
            "--device",
            "cpu",
        ]

    return args


@pytest.fixture(scope="session")
def tiny_train_seg():
    """``(data, out, *extra) -> list``: the arguments of a one-epoch ``train-seg`` run for the CPU tests."""

    def args(data, out, *extra: str) -> list[str]:
        return [
            "train-seg",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--slices-per-case",
            "2",
            "--val-fraction",
            "0.34",
            "--device",
            "cpu",
            *extra,
        ]

    return args


@pytest.fixture
def series(small_case_files, tmp_path):
    """A writable copy of ``small_case``'s DICOM series (tests edit its tags or add objects to it)."""
    import shutil

    dst = tmp_path / "series"
    shutil.copytree(small_case_files / "dicom" / "dicom", dst)
    return dst
