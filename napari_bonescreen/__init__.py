"""napari front end of BoneScreen; the work is done by the ``bonescreen`` core."""

__version__ = "0.1.0"
