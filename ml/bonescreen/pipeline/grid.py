"""Bring axial slices of any size and pixel spacing to MS-Net's 512x512 grid and back.

The network was trained on 512x512 slices with 0.6-0.9 mm pixels. A slice is
resampled to the spacing that fits its field of view into 512 pixels, kept
within 0.6-0.9 mm, then padded (with air) or cropped about its centre. A
512x512 slice already in that range is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

NET_SIZE = 512
SPACING_RANGE = (0.6, 0.9)


@dataclass(frozen=True)
class NetGrid:
    """How the input slices map onto the network grid."""

    in_shape: tuple[int, int]
    in_spacing: tuple[float, float]
    spacing: float
    resized: tuple[int, int]

    @classmethod
    def for_slices(cls, shape: tuple[int, int], spacing: tuple[float, float]) -> NetGrid:
        """The grid for slices of ``shape`` (rows, cols) with pixel ``spacing`` (dy, dx) in mm."""
        fov = max(shape[0] * spacing[0], shape[1] * spacing[1])
        target = float(np.clip(fov / NET_SIZE, *SPACING_RANGE))
        if (
            shape == (NET_SIZE, NET_SIZE)
            and all(SPACING_RANGE[0] - 1e-6 <= s <= SPACING_RANGE[1] + 1e-6 for s in spacing)
            and abs(spacing[0] - spacing[1]) < 1e-3
        ):
            return cls(tuple(shape), tuple(spacing), float(spacing[0]), tuple(shape))
        resized = (max(1, round(shape[0] * spacing[0] / target)), max(1, round(shape[1] * spacing[1] / target)))
        return cls(tuple(shape), tuple(spacing), target, resized)

    @property
    def identity(self) -> bool:
        """True when the slices are used as they are."""
        return self.resized == self.in_shape == (NET_SIZE, NET_SIZE)

    def _offsets(self) -> tuple[int, int]:
        return ((NET_SIZE - self.resized[0]) // 2, (NET_SIZE - self.resized[1]) // 2)

    def to_net(self, slices: np.ndarray, fill: float) -> np.ndarray:
        """(n, rows, cols) input slices -> (n, 512, 512) on the network grid (linear interpolation)."""
        if self.identity:
            return slices
        zoom = (1.0, self.resized[0] / self.in_shape[0], self.resized[1] / self.in_shape[1])
        small = ndimage.zoom(slices, zoom, order=1, mode="nearest", grid_mode=True)
        out = np.full((slices.shape[0], NET_SIZE, NET_SIZE), fill, dtype=slices.dtype)
        oy, ox = self._offsets()
        src_y = slice(max(-oy, 0), max(-oy, 0) + min(NET_SIZE, small.shape[1]))
        src_x = slice(max(-ox, 0), max(-ox, 0) + min(NET_SIZE, small.shape[2]))
        dst_y = slice(max(oy, 0), max(oy, 0) + (src_y.stop - src_y.start))
        dst_x = slice(max(ox, 0), max(ox, 0) + (src_x.stop - src_x.start))
        out[:, dst_y, dst_x] = small[:, src_y, src_x]
        return out

    def from_net(self, maps: np.ndarray) -> np.ndarray:
        """(n, 512, 512) network-grid maps (probabilities) -> (n, rows, cols) on the input grid."""
        if self.identity:
            return maps
        oy, ox = self._offsets()
        full = np.zeros((maps.shape[0], *self.resized), dtype=np.float32)
        src_y = slice(max(oy, 0), max(oy, 0) + min(NET_SIZE, self.resized[0]))
        src_x = slice(max(ox, 0), max(ox, 0) + min(NET_SIZE, self.resized[1]))
        dst_y = slice(max(-oy, 0), max(-oy, 0) + (src_y.stop - src_y.start))
        dst_x = slice(max(-ox, 0), max(-ox, 0) + (src_x.stop - src_x.start))
        full[:, dst_y, dst_x] = maps[:, src_y, src_x]
        zoom = (1.0, self.in_shape[0] / self.resized[0], self.in_shape[1] / self.resized[1])
        return ndimage.zoom(full, zoom, order=1, mode="nearest", grid_mode=True)
