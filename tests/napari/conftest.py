"""napari tests run a real viewer; they need a display (Xvfb in CI: `xvfb-run`)."""

import os

import pytest

if not os.environ.get("DISPLAY"):
    pytest.fail("napari tests need a display: run them under xvfb-run (make test does)", pytrace=False)
