"""Drawing primitives on an axial slice in millimetres (x: patient left, y: posterior)."""

from __future__ import annotations

import numpy as np


class Canvas:
    """Pixel-centre coordinates of an n x n slice and masks of simple shapes, each on its bounding box.

    Parameters
    ----------
    n : int
        Slice size in pixels.
    spacing : float
        Pixel size in mm; the slice is centred on (0, 0).
    """

    def __init__(self, n: int, spacing: float) -> None:
        self.n = n
        self.spacing = spacing
        self.coords = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * spacing

    def _index(self, lo: float, hi: float) -> slice:
        a = int(np.floor((lo / self.spacing) + (self.n - 1) / 2))
        b = int(np.ceil((hi / self.spacing) + (self.n - 1) / 2)) + 1
        return slice(max(a, 0), min(max(b, 0), self.n))

    def box(self, x0: float, x1: float, y0: float, y1: float):
        """(row slice, column slice, X grid, Y grid) of the pixels in [x0, x1] x [y0, y1]."""
        rs, cs = self._index(y0, y1), self._index(x0, x1)
        return rs, cs, self.coords[cs][None, :], self.coords[rs][:, None]

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0):
        """Region inside an ellipse with semi-axes a (x) and b (y), rotated by ``angle`` radians."""
        r = max(a, b)
        rs, cs, x, y = self.box(cx - r, cx + r, cy - r, cy + r)
        dx, dy = x - cx, y - cy
        if angle:
            c, s = np.cos(angle), np.sin(angle)
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        return (rs, cs), (dx / a) ** 2 + (dy / b) ** 2 <= 1.0

    def segment(self, p0: tuple[float, float], p1: tuple[float, float], half_width: float):
        """Region within ``half_width`` of the segment p0-p1 (a bar with round ends)."""
        (x0, y0), (x1, y1) = p0, p1
        rs, cs, x, y = self.box(
            min(x0, x1) - half_width, max(x0, x1) + half_width, min(y0, y1) - half_width, max(y0, y1) + half_width
        )
        vx, vy = x1 - x0, y1 - y0
        length2 = vx * vx + vy * vy or 1e-9
        t = np.clip(((x - x0) * vx + (y - y0) * vy) / length2, 0.0, 1.0)
        d2 = (x - x0 - t * vx) ** 2 + (y - y0 - t * vy) ** 2
        return (rs, cs), d2 <= half_width * half_width

    def ring(self, cx: float, cy: float, a: float, b: float, width: float, y_min: float | None = None):
        """Band of ``width`` mm along an ellipse outline, optionally only where y >= y_min."""
        outer = self.ellipse(cx, cy, a + width / 2, b + width / 2)
        (rs, cs), m = outer
        x, y = self.coords[cs][None, :], self.coords[rs][:, None]
        inner = ((x - cx) / max(a - width / 2, 1e-3)) ** 2 + ((y - cy) / max(b - width / 2, 1e-3)) ** 2 <= 1.0
        m = m & ~inner
        if y_min is not None:
            m = m & (y >= y_min)
        return (rs, cs), m


def paint(img: np.ndarray, region, value: float) -> None:
    """Set ``img`` to ``value`` inside a region from :class:`Canvas`."""
    (rs, cs), m = region
    img[rs, cs][m] = value


def paint_where(img: np.ndarray, region, value: float, where: np.ndarray) -> None:
    """Set ``img`` to ``value`` inside a region, only where the full-size mask ``where`` is true."""
    (rs, cs), m = region
    img[rs, cs][m & where[rs, cs]] = value
