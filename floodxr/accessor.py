"""The ``.flood`` accessor on DataArray and Dataset: a thin facade over floodxr's functions."""

from __future__ import annotations

from typing import Any

import xarray as xr

from floodxr import metrics, plot, preprocess, segment, threshold, writers
from floodxr.bands import Polarisation
from floodxr.errors import WrongTypeError

__all__ = ["FloodAccessor"]


class FloodAccessor:
    """Flood mapping on xarray objects: ``da.flood.otsu()``, ``ds.flood.to_db()``, ...

    Holds nothing but the wrapped object; every method forwards to a module function with the
    same name and returns a new xarray object (lazy when the input is).

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> mask = scene.s1.flood.otsu(band="vh")
    >>> round(float(mask.flood.area_km2()), 2) > 0
    True
    """

    __slots__ = ("_obj",)

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def to_db(self) -> Any:
        """Linear power to dB; see :func:`floodxr.preprocess.to_db`."""
        return preprocess.to_db(self._obj)

    def from_db(self) -> Any:
        """dB to linear power; see :func:`floodxr.preprocess.from_db`."""
        return preprocess.from_db(self._obj)

    def normalize(self, **kwargs: Any) -> xr.DataArray:
        """The paper's clip-and-scale; see :func:`floodxr.preprocess.normalize`."""
        return preprocess.normalize(self._obj, **kwargs)

    def ndwi(self) -> xr.DataArray:
        """See :func:`floodxr.preprocess.ndwi`."""
        return preprocess.ndwi(self._obj)

    def mndwi(self) -> xr.DataArray:
        """See :func:`floodxr.preprocess.mndwi`."""
        return preprocess.mndwi(self._obj)

    def ndvi(self) -> xr.DataArray:
        """See :func:`floodxr.preprocess.ndvi`."""
        return preprocess.ndvi(self._obj)

    def weak_labels(self, **kwargs: Any) -> xr.DataArray:
        """Weak water labels from Sentinel-2; see :func:`floodxr.preprocess.weak_labels`."""
        return preprocess.weak_labels(self._obj, **kwargs)

    def otsu_threshold(self, *, band: Polarisation = "vh", **kwargs: Any) -> xr.DataArray:
        """See :func:`floodxr.threshold.otsu_threshold`."""
        return threshold.otsu_threshold(self._obj, band=band, **kwargs)

    def otsu(self, *, band: Polarisation = "vh", **kwargs: Any) -> xr.DataArray:
        """Global Otsu water mask; see :func:`floodxr.threshold.otsu`."""
        return threshold.otsu(self._obj, band=band, **kwargs)

    def otsu_tiled(self, *, band: Polarisation = "vh", **kwargs: Any) -> xr.DataArray:
        """Bimodal-tile Otsu water mask; see :func:`floodxr.threshold.otsu_tiled`."""
        return threshold.otsu_tiled(self._obj, band=band, **kwargs)

    def threshold(self, value: float | xr.DataArray, *, band: Polarisation = "vh") -> xr.DataArray:
        """Fixed-threshold water mask; see :func:`floodxr.threshold.fixed`."""
        return threshold.fixed(self._obj, value, band=band)

    def segment(self, *, model: str = "student", **kwargs: Any) -> xr.DataArray:
        """Water probability or mask from a model; see :func:`floodxr.segment.segment`."""
        return segment.segment(self._obj, model=model, **kwargs)

    def to_cog(self, path: Any, **kwargs: Any) -> Any:
        """Stream to a Cloud-Optimized GeoTIFF; see :func:`floodxr.writers.to_cog`."""
        if not isinstance(self._obj, xr.DataArray):
            raise WrongTypeError("to_cog writes one DataArray; pick a variable, e.g. ds['water']")
        return writers.to_cog(self._obj, path, **kwargs)

    def to_zarr(self, store: Any, **kwargs: Any) -> Any:
        """Stream to a Zarr store; see :func:`floodxr.writers.to_zarr`."""
        return writers.to_zarr(self._obj, store, **kwargs)

    def plot(self, water: xr.DataArray | None = None, **kwargs: Any) -> Any:
        """Backscatter with a water mask / probability on top; see :func:`floodxr.plot.overlay`."""
        if not isinstance(self._obj, xr.DataArray):
            raise WrongTypeError(
                "plot draws a Sentinel-1 DataArray with a 'band' dim; pick it, "
                "e.g. ds['s1'].flood.plot(water)"
            )
        return plot.overlay(self._obj, water, **kwargs)

    def area_km2(self) -> xr.DataArray:
        """Water area of a mask in km²; see :func:`floodxr.metrics.water_area_km2`."""
        if not isinstance(self._obj, xr.DataArray):
            raise WrongTypeError(
                "area_km2 works on a mask DataArray, not a Dataset; pick the mask variable, "
                "e.g. ds['water'].flood.area_km2()"
            )
        return metrics.water_area_km2(self._obj)

    def confusion(self, label: xr.DataArray, **kwargs: Any) -> metrics.Confusion:
        """Water confusion counts against ``label`` (computes); see ``metrics.confusion``."""
        if not isinstance(self._obj, xr.DataArray):
            raise WrongTypeError(
                "confusion works on a prediction DataArray, not a Dataset; pick the mask "
                "variable, e.g. ds['water'].flood.confusion(label)"
            )
        return metrics.confusion(self._obj, label, **kwargs)


xr.register_dataarray_accessor("flood")(FloodAccessor)
xr.register_dataset_accessor("flood")(FloodAccessor)
