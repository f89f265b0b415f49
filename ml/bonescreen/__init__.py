"""BoneScreen core: osteoporosis screening on routine lumbar CT.

Networks (:mod:`bonescreen.nets`), training (:mod:`bonescreen.train`),
metrics (:mod:`bonescreen.metrics`), CT input/output (:mod:`bonescreen.io`),
the synthetic phantom (:mod:`bonescreen.phantom`) and the command line.
"""

from .errors import BoneScreenError
from .labels import CLASS_NAMES, LEVEL_NAMES

__version__ = "0.1.0"

__all__ = ["CLASS_NAMES", "LEVEL_NAMES", "BoneScreenError", "__version__"]
