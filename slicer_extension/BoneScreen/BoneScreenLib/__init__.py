"""GUI-free helpers of the BoneScreen Slicer module (MRML nodes <-> the ``bonescreen`` core)."""
