"""``python -m bonescreen``: the command line."""

from .cli import entry

entry()
