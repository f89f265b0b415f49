"""MS-Net: the paper's pix2pix-style U-Net that maps a CT slice to a mark image."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import BoneScreenError

#: Encoder channels of the paper's MS-Net at full width (9 convs, 4x4, stride 2).
PAPER_ENCODER_CHANNELS = (64, 128, 256, 512, 512, 512, 512, 512, 512)


def _scaled(channels: int, width: float) -> int:
    return max(4, round(channels * width))


class MSNet(nn.Module):
    """U-Net segmenter of the paper (section 2.1), with a width multiplier.

    The encoder has ``depth`` convolutions (4x4, stride 2, LeakyReLU 0.2) with
    64, 128, 256 and then 512 channels; the decoder mirrors it with transposed
    convolutions (4x4, stride 2, ReLU) and skip connections, and a last
    transposed convolution gives the one-channel mark image in [0, 1].

    Parameters
    ----------
    width : float
        Channel multiplier; 1.0 is the paper's network (about 67 M parameters).
    depth : int
        Number of stride-2 encoder convolutions; 9 for 512x512 input.
    in_channels : int
        Input channels (1 for CT).
    norm : {"batch", "instance", "none"}
        Normalization after each inner convolution, as in pix2pix.
    """

    def __init__(self, width: float = 1.0, depth: int = 9, in_channels: int = 1, norm: str = "batch") -> None:
        super().__init__()
        if width <= 0:
            raise BoneScreenError(f"width must be positive, got {width}")
        if in_channels < 1:
            raise BoneScreenError(f"in_channels must be at least 1, got {in_channels}")
        if depth < 2:
            raise BoneScreenError(f"depth must be at least 2, got {depth}")
        if norm not in ("batch", "instance", "none"):
            raise BoneScreenError(f"norm must be 'batch', 'instance' or 'none', got {norm!r}")
        self.width = float(width)
        self.depth = int(depth)
        self.in_channels = int(in_channels)
        self.norm = norm
        base = list(PAPER_ENCODER_CHANNELS[:3]) + [512] * max(0, depth - 3)
        chans = [_scaled(c, width) for c in base[:depth]]
        self.channels = tuple(chans)

        def norm_layer(c: int) -> nn.Module:
            if norm == "batch":
                return nn.BatchNorm2d(c)
            if norm == "instance":
                return nn.InstanceNorm2d(c, affine=True)
            return nn.Identity()

        self.encoder = nn.ModuleDict()
        prev = in_channels
        for i, c in enumerate(chans):
            block: dict[str, nn.Module] = {
                "conv": nn.Conv2d(prev, c, 4, stride=2, padding=1, bias=(i == 0 or i == depth - 1 or norm == "none"))
            }
            # pix2pix: no normalization on the first and innermost encoder layers
            if 0 < i < depth - 1:
                block["norm"] = norm_layer(c)
            block["act"] = nn.LeakyReLU(0.2, inplace=True)
            self.encoder[f"down{i + 1}"] = nn.Sequential(OrderedDict(block))
            prev = c

        self.decoder = nn.ModuleDict()
        for i in range(depth - 1, 0, -1):
            # input: innermost features, or the previous decoder output concatenated with a skip
            cin = chans[i] if i == depth - 1 else chans[i] * 2
            cout = chans[i - 1]
            # "up{i}" brings the features of encoder block i + 1 back to the size of block i's output
            self.decoder[f"up{i}"] = nn.Sequential(
                OrderedDict(
                    deconv=nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=norm == "none"),
                    norm=norm_layer(cout),
                    act=nn.ReLU(inplace=True),
                )
            )
        self.head = nn.ConvTranspose2d(chans[0] * 2, 1, 4, stride=2, padding=1)

    def legacy_names(self) -> dict[str, str]:
        """Module names of weights format 1 (positions in lists, ``down.3.1``) -> today's (``encoder.down4.norm``).

        Format-1 checkpoints (the weights bundled in November 2026) are read through this map
        by :func:`bonescreen.checkpoint.load_model`.
        """
        names = {}
        for k, key in enumerate(self.encoder):
            names[f"down.{k}.0"] = f"encoder.{key}.conv"
            if hasattr(self.encoder[key], "norm"):
                names[f"down.{k}.1"] = f"encoder.{key}.norm"
        for k, key in enumerate(self.decoder):
            names[f"up.{k}.0"] = f"decoder.{key}.deconv"
            names[f"up.{k}.1"] = f"decoder.{key}.norm"
        return names

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (2**depth)."""
        return 2**self.depth

    def check_input(self, x: torch.Tensor) -> None:
        """Raise BoneScreenError unless ``x`` is (N, in_channels, H, W) with H, W multiples of 2**depth."""
        m = self.multiple
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % m or x.shape[3] % m or x.shape[2] == 0:
            raise BoneScreenError(
                f"MS-Net (depth {self.depth}) expects input of shape (N, {self.in_channels}, H, W) "
                f"with H and W multiples of {m} (e.g. {m}x{m}), got {tuple(x.shape)}"
            )

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Mark-image logits (before the sigmoid), shape (N, 1, H, W)."""
        self.check_input(x)
        skips = []
        for block in self.encoder.values():
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder.values():
            x = block(x)
            x = torch.cat([x, skips.pop()], dim=1)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mark image in [0, 1], shape (N, 1, H, W)."""
        return torch.sigmoid(self.forward_logits(x))

    def config(self) -> dict:
        """Constructor arguments that rebuild this network."""
        return {"width": self.width, "depth": self.depth, "in_channels": self.in_channels, "norm": self.norm}
