"""DenseNet-BC builder: BCC-Net of the paper (section 2.2, Table 1) and the Table 5 ablations."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BoneScreenError


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, suffix: str = "") -> dict[str, nn.Module]:
    # The paper's "conv" is the sequence conv-bn-relu (Table 1 caption).
    return {
        f"conv{suffix}": nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        f"norm{suffix}": nn.BatchNorm2d(cout),
        f"relu{suffix}": nn.ReLU(inplace=True),
    }


class _DenseLayer(nn.Module):
    """Bottleneck layer: 1x1 conv to ``bn_size * growth`` maps, then 3x3 conv to ``growth`` maps."""

    def __init__(self, cin: int, growth: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        mid = bn_size * growth
        self.layers = nn.Sequential(
            OrderedDict(
                **_conv_bn_relu(cin, mid, 1, suffix="1"),
                drop1=nn.Dropout(drop_rate),
                **_conv_bn_relu(mid, growth, 3, suffix="2"),
                drop2=nn.Dropout(drop_rate),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class DenseNet(nn.Module):
    """DenseNet-BC for 1-channel CT crops.

    Stem 7x7/2 conv + 3x3/2 max-pool, dense blocks of bottleneck layers, 1x1 conv
    + 2x2 average-pool transitions (compression 0.5), global average pooling and
    a linear layer. ``forward`` returns logits; :meth:`predict_proba` returns the
    softmax probabilities.

    Parameters
    ----------
    block_config : sequence of int
        Bottleneck layers per dense block; (1, 2, 4, 2) is BCC-Net.
    growth_rate : int
        Feature maps added by each layer (k).
    num_init_features : int, optional
        Stem width; default ``2 * growth_rate`` (DenseNet-BC).
    bn_size : int
        Bottleneck width factor: the 1x1 conv gives ``bn_size * growth_rate`` maps.
    drop_rate : float
        Dropout after each conv but the stem's (paper: 0.4).
    num_classes : int
        Output classes (3: normal, low bone mass, osteoporosis).
    in_channels : int
        Input channels.
    input_size : int
        Expected square input size (224); other sizes give a BoneScreenError.
    compression : float
        Fraction of maps kept by each transition.
    """

    def __init__(
        self,
        block_config: Sequence[int] = (1, 2, 4, 2),
        growth_rate: int = 12,
        num_init_features: int | None = None,
        bn_size: int = 4,
        drop_rate: float = 0.4,
        num_classes: int = 3,
        in_channels: int = 1,
        input_size: int = 224,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        block_config = tuple(int(b) for b in block_config)
        if not block_config or min(block_config) < 1:
            raise BoneScreenError(f"block_config needs at least one block of at least one layer, got {block_config}")
        if growth_rate < 1 or bn_size < 1 or in_channels < 1 or num_classes < 2:
            raise BoneScreenError(
                f"growth_rate, bn_size and in_channels must be >= 1 and num_classes >= 2, got {growth_rate}, "
                f"{bn_size}, {in_channels} and {num_classes}"
            )
        if not 0.0 <= drop_rate < 1.0:
            raise BoneScreenError(f"drop_rate must be in [0, 1), got {drop_rate}")
        if not 0.0 < compression <= 1.0:
            raise BoneScreenError(f"compression must be in (0, 1], got {compression}")
        reduction = 4 * 2 ** (len(block_config) - 1)
        if input_size < reduction:
            raise BoneScreenError(f"input_size {input_size} is too small for {len(block_config)} dense blocks")
        if num_init_features is None:
            num_init_features = 2 * growth_rate
        self.hparams = {
            "block_config": list(block_config),
            "growth_rate": int(growth_rate),
            "num_init_features": int(num_init_features),
            "bn_size": int(bn_size),
            "drop_rate": float(drop_rate),
            "num_classes": int(num_classes),
            "in_channels": int(in_channels),
            "input_size": int(input_size),
            "compression": float(compression),
        }
        # named as in torchvision's and MONAI's DenseNets: conv0 ... denseblock1.denselayer1 ... transition1
        features: dict[str, nn.Module] = {
            **_conv_bn_relu(in_channels, num_init_features, 7, stride=2, suffix="0"),
            "pool0": nn.MaxPool2d(3, stride=2, padding=1),
        }
        c = num_init_features
        for b, n in enumerate(block_config):
            block = nn.Sequential()
            for i in range(n):
                block.add_module(f"denselayer{i + 1}", _DenseLayer(c, growth_rate, bn_size, drop_rate))
                c += growth_rate
            features[f"denseblock{b + 1}"] = block
            if b < len(block_config) - 1:
                cout = max(1, int(c * compression))
                features[f"transition{b + 1}"] = nn.Sequential(
                    OrderedDict(**_conv_bn_relu(c, cout, 1), drop=nn.Dropout(drop_rate), pool=nn.AvgPool2d(2, stride=2))
                )
                c = cout
        self.features = nn.Sequential(OrderedDict(features))
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise BoneScreenError unless ``x`` is (N, in_channels, input_size, input_size)."""
        s, c = self.hparams["input_size"], self.hparams["in_channels"]
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise BoneScreenError(f"this DenseNet expects input of shape (N, {c}, {s}, {s}), got {tuple(x.shape)}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features before the classifier, shape (N, features): what the linear layer sees."""
        self.check_input(x)
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.classifier(self.embed(x))

    def predict_proba(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Softmax class probabilities of ``logits / temperature``, shape (N, num_classes); rows sum to 1.

        ``temperature`` > 1 softens over-confident probabilities (temperature scaling, Guo et al., ICML
        2017); the bundled BCC-Net's is fitted on its validation split and stored in its JSON.
        """
        return torch.softmax(self.forward(x).float() / float(temperature), dim=1)

    def config(self) -> dict:
        """Constructor arguments that rebuild this network."""
        return dict(self.hparams)

    def legacy_names(self) -> dict[str, str]:
        """Module names of weights format 1 (positions in one ``features`` list) -> today's.

        Format 1 numbered every layer of ``features`` in order (stem conv, norm, relu, pool; one
        entry per dense layer, whose ``body`` numbered conv, norm, relu, dropout, conv, norm;
        five per transition). Read by :func:`bonescreen.checkpoint.load_model`.
        """
        names = {"features.0": "features.conv0", "features.1": "features.norm0"}
        position = 4
        for b, n in enumerate(self.hparams["block_config"]):
            for i in range(n):
                new = f"features.denseblock{b + 1}.denselayer{i + 1}.layers"
                names[f"features.{position}.body.0"] = f"{new}.conv1"
                names[f"features.{position}.body.1"] = f"{new}.norm1"
                names[f"features.{position}.body.4"] = f"{new}.conv2"
                names[f"features.{position}.body.5"] = f"{new}.norm2"
                position += 1
            if b < len(self.hparams["block_config"]) - 1:
                names[f"features.{position}"] = f"features.transition{b + 1}.conv"
                names[f"features.{position + 1}"] = f"features.transition{b + 1}.norm"
                position += 5
        return names
