"""Networks: MS-Net (segmentation) and the DenseNet-BC family (BCC-Net and ablations)."""

from .densenet import DenseNet
from .msnet import MSNet
from .registry import create_model, model_names, model_task

BCCNet = DenseNet

__all__ = ["BCCNet", "DenseNet", "MSNet", "create_model", "model_names", "model_task"]
