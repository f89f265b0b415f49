"""Install the ``bonescreen`` core into Slicer's Python on first use, after asking the user."""

from __future__ import annotations

from pathlib import Path

#: The core's source shipped beside the module by the extension build, if present.
BUNDLED_SOURCE = Path(__file__).resolve().parents[1] / "bonescreen-core"


def is_installed() -> bool:
    """True when ``import bonescreen`` works."""
    try:
        import bonescreen  # noqa: F401
    except ImportError:
        return False
    return True


def install_command() -> str:
    """What ``slicer.util.pip_install`` gets: the bundled source if it ships, else the package name."""
    return f'"{BUNDLED_SOURCE}"' if BUNDLED_SOURCE.is_dir() else "bonescreen"
