"""Per-chunk work of a basin run, on the workers: clip a chunk of water probability to the
basin, turn it and its exclusion flags into the pass's layers by the rules ``floodxr map``
uses (:func:`floodxr.product.block_layers`), write them straight into their Zarr arrays, and
measure their areas (:func:`floodxr.product.block_areas`; km², the one area rule of
:func:`floodxr.grid.block_area_km2`). Writing a chunk twice writes the same bytes, so a unit whose
worker dies is simply recomputed by dask.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from floodxr.grid import block_area_km2
from floodxr.product import block_areas, block_layers

__all__ = ["Target", "unit_graph"]


def _inside(geometry: Any, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    from rasterio.features import geometry_mask

    return geometry_mask([geometry], out_shape=shape, transform=transform, invert=True)


@dataclass(frozen=True)
class Target:
    """Where a unit's chunks go and how they are measured; plain values, shipped in the graph."""

    store: str
    basin: str
    geometry: Any  # the polygon in the grid's CRS
    grid: GeoBox
    time_index: int | None  # None: the reference layer
    with_reference: bool
    cut: float = 0.5  # the model's water cut


def _write_block(
    values: np.ndarray, terrain: np.ndarray | None, target: Target, y0: int, x0: int
) -> np.ndarray:
    """Clip one chunk of water probability to the basin, write its layers, return its areas
    (:data:`floodxr.product.AREAS`, km²)."""
    import zarr

    grid = target.grid
    height, width = values.shape[-2:]
    transform = grid.affine * Affine.translation(x0, y0)
    inside = _inside(target.geometry, transform, (height, width))
    probability = np.where(inside, values.reshape(height, width), np.nan).astype("float32")
    rows, cols = slice(y0, y0 + height), slice(x0, x0 + width)

    def array(name: str) -> Any:
        return zarr.open_array(os.path.join(target.store, target.basin, name), mode="r+")

    reference = None
    if target.time_index is not None and target.with_reference:
        reference = array("reference")[rows, cols]
    codes = None if terrain is None else terrain.reshape(height, width)
    layers = block_layers(probability, cut=target.cut, terrain=codes, reference=reference)
    if target.time_index is None:
        array("reference")[rows, cols] = layers["water"]
    else:
        for name in ("probability", "water", "exclusion"):
            array(name)[target.time_index, rows, cols] = layers[name]
    area = block_area_km2(grid.crs, grid.affine, range(y0, y0 + height), range(x0, x0 + width))
    return block_areas(layers, area)


def _total(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.sum(np.stack(parts), axis=0)


def unit_graph(
    probability: xr.DataArray, target: Target, chunk: int, exclusion: xr.DataArray | None = None
) -> Any:
    """A delayed array of the unit's areas (:data:`floodxr.product.AREAS`, km²) that writes
    every chunk of ``probability`` (and its ``exclusion`` flags, on the same grid)."""
    data = probability.data.reshape(probability.shape[-2:]).rechunk((chunk, chunk))
    starts = [np.cumsum((0,) + c[:-1]) for c in data.chunks]
    blocks = data.to_delayed()
    flags = None
    if exclusion is not None:
        flags = exclusion.data.rechunk(data.chunks).to_delayed()
    parts = [
        dask.delayed(_write_block, pure=True)(
            blocks[i, j],
            None if flags is None else flags[i, j],
            target,
            int(starts[0][i]),
            int(starts[1][j]),
        )
        for i in range(blocks.shape[0])
        for j in range(blocks.shape[1])
    ]
    return dask.delayed(_total, pure=True)(parts)
