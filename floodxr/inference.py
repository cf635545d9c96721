"""The kernel that runs a network over one block of a scene: the windows, their context, blending.

``segment`` (and through it training validation, ``floodxr evaluate`` and the model card) runs
every network through :func:`predict_block` with a plan from :func:`plan_for`:

* :class:`WindowFree`, for a network whose output depends only on the input within a bounded
  radius (its checkpoint's ``context``): the block is a chunk with ``halo`` px of its neighbours
  on each side (mirrored at the scene's border), cut into windows whose cores of ``window`` px
  lie on one grid from the scene's top-left pixel (chunks are multiples of ``window``); each
  window reads ``halo`` px beyond its core and keeps only the core. No blending: a pixel's
  probability comes from the same window, the same input values, in any chunking, so chunked
  and whole-scene results agree to float precision. With ``halo`` at the full context they
  also equal the network run over the whole scene at once; a thinner halo (the default) trades
  a small difference at window borders for speed.
* :class:`Blended`, for a network with global context (the paper's ASPP image pooling, whose
  output depends on the whole window): windows of ``window`` px on one global grid with a step
  of ``window - halo``, each weighted by a ramp rising over ``halo`` px from its edges and
  blended with its neighbours. A pixel always gets the same windows with the same weights.

Invalid input pixels (NaN or +-inf in any band) give NaN; inside a window they are 0 (the bottom
of the normalised range) so the network still sees their neighbours; windows with no valid pixel
are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from floodxr.errors import InvalidOptionError
from floodxr.preprocess import clip_scale

__all__ = ["Blended", "WindowFree", "Plan", "predict_block"]

#: ``(N, bands, H, W)`` normalised float32 -> ``(N, H, W)`` water probability.
Network = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class WindowFree:
    """Cores of ``window`` px on the scene's grid, each read with ``halo`` px of context."""

    window: int
    halo: int
    align: int

    def __post_init__(self) -> None:
        if self.halo % self.align or self.window % self.align:
            raise InvalidOptionError(
                f"window ({self.window}) and halo ({self.halo}) must be "
                f"multiples of {self.align} px"
            )

    @property
    def depth(self) -> int:
        """Px of each neighbouring chunk a block needs."""
        return self.halo

    def aligned_chunks(self, chunks: tuple[int, ...]) -> tuple[int, ...]:
        """Chunks on the windows' grid (multiples of ``window``), none thinner than the halo."""
        return _aligned(chunks, self.window, max(self.align, self.halo))

    def predict(
        self, raw: np.ndarray, low: np.ndarray, high: np.ndarray, network: Network
    ) -> np.ndarray:
        h = self.halo
        core_y, core_x = raw.shape[-2] - 2 * h, raw.shape[-1] - 2 * h
        invalid = ~np.isfinite(raw).all(axis=0)
        out = np.full((core_y, core_x), np.nan, "float32")
        for y0 in range(0, core_y, self.window):
            for x0 in range(0, core_x, self.window):
                y1, x1 = min(y0 + self.window, core_y), min(x0 + self.window, core_x)
                if invalid[h + y0 : h + y1, h + x0 : h + x1].all():
                    continue
                scaled = _scaled(raw[:, y0 : y1 + 2 * h, x0 : x1 + 2 * h], low, high)
                out[y0:y1, x0:x1] = network(scaled[None])[0, h : h + y1 - y0, h : h + x1 - x0]
        out[invalid[h : h + core_y, h : h + core_x]] = np.nan
        return out


@dataclass(frozen=True)
class Blended:
    """Windows of ``window`` px overlapping by ``halo`` px, blended by ramps."""

    window: int
    halo: int
    batch_size: int = 1

    @property
    def step(self) -> int:
        return self.window - self.halo

    @property
    def depth(self) -> int:
        """Px of each neighbouring chunk a block needs: one step."""
        return self.step

    def aligned_chunks(self, chunks: tuple[int, ...]) -> tuple[int, ...]:
        """Chunks that start on multiples of the step, none thinner than one step."""
        return _aligned(chunks, self.step, self.step)

    def starts(self, n: int) -> list[int]:
        """Window starts on the global grid: 0, step, ... until a window reaches ``n``."""
        last = max(0, math.ceil((n - self.window) / self.step)) * self.step
        return list(range(0, last + 1, self.step))

    def ramp(self) -> np.ndarray:
        edge = np.arange(self.window, dtype="float32") + 0.5
        ramp = np.minimum(edge, self.window - edge + 1.0) / max(self.halo, 1)
        return np.minimum(ramp, 1.0)

    def predict(
        self,
        raw: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        network: Network,
        origin: tuple[int, int],
        sizes: tuple[int, int],
    ) -> np.ndarray:
        step, window = self.step, self.window
        core_y, core_x = raw.shape[-2] - 2 * step, raw.shape[-1] - 2 * step
        invalid = ~np.isfinite(raw).all(axis=0)

        def local(n: int, offset: int, core: int) -> list[int]:
            # the global windows that overlap the core, in block coordinates
            return [
                g - offset + step
                for g in self.starts(n)
                if g < offset + core and g + window > offset
            ]

        windows = [
            (wy, wx)
            for wy in local(sizes[0], origin[0], core_y)
            for wx in local(sizes[1], origin[1], core_x)
            if not invalid[wy : wy + window, wx : wx + window].all()
        ]
        numerator = np.zeros((core_y, core_x), "float32")
        denominator = np.zeros((core_y, core_x), "float32")
        weight = np.outer(self.ramp(), self.ramp())
        for first in range(0, len(windows), self.batch_size):
            batch = windows[first : first + self.batch_size]
            stack = np.stack(
                [_scaled(raw[:, y : y + window, x : x + window], low, high) for y, x in batch]
            )
            for (y, x), probability in zip(batch, network(stack), strict=True):
                y0, x0 = max(y, step), max(x, step)
                y1, x1 = min(y + window, step + core_y), min(x + window, step + core_x)
                w = weight[y0 - y : y1 - y, x0 - x : x1 - x]
                core = (slice(y0 - step, y1 - step), slice(x0 - step, x1 - step))
                numerator[core] += w * probability[y0 - y : y1 - y, x0 - x : x1 - x]
                denominator[core] += w
        with np.errstate(invalid="ignore", divide="ignore"):
            result = numerator / denominator
        result[denominator == 0] = np.nan
        result[invalid[step : step + core_y, step : step + core_x]] = np.nan
        return result


Plan = WindowFree | Blended


def predict_block(
    raw: np.ndarray,
    plan: Plan,
    network: Network,
    *,
    low: np.ndarray,
    high: np.ndarray,
    origin: tuple[int, int],
    sizes: tuple[int, int],
) -> np.ndarray:
    """Water probability of the core of one ``(band, y, x)`` block in dB.

    ``raw`` holds the core and ``plan.depth`` px of context on every side (neighbouring
    chunks, or the scene mirrored at its border); ``origin`` is the core's first pixel in the
    scene, ``sizes`` the scene's; ``low``/``high`` the normalisation, one per band.
    """
    if isinstance(plan, WindowFree):
        return plan.predict(raw, low, high, network)
    return plan.predict(raw, low, high, network, origin, sizes)


def _scaled(window: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    # normalised per window, not per block: a block copy would double its memory
    scaled = clip_scale(window, low, high)
    scaled[~np.isfinite(window)] = 0.0  # NaN and +-inf: invalid, like NaN after masking
    return scaled


def _aligned(chunks: tuple[int, ...], unit: int, thinnest: int) -> tuple[int, ...]:
    """Chunks of about the largest given size, multiples of ``unit``, none thinner than
    ``thinnest`` (the remainder joins the last chunk)."""
    n = sum(chunks)
    size = max(thinnest, round(max(chunks) / unit) * unit)
    size = -(-size // unit) * unit
    aligned = [size] * (n // size)
    rest = n - sum(aligned)
    if rest and aligned and rest < thinnest:
        aligned[-1] += rest
    elif rest:
        aligned.append(rest)
    return tuple(aligned)
