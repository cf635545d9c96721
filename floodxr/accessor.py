"""The ``.flood`` accessor on DataArray and Dataset: a thin facade over floodxr's functions.

Each method is the module function with the wrapped object as its first argument, forwarded
with :func:`functools.wraps` (as odc-geo's ``_xr_interop`` does): its docstring, signature and
return type are the function's. The DataArray and the Dataset accessor are separate classes, so
a method that needs one DataArray (writing a COG, plotting, areas, scores) is not there on a
Dataset, and asking for it says which variable to pick.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import xarray as xr

from floodxr import (
    explore,
    metrics,
    plot,
    polygons,
    preprocess,
    segment,
    terrain,
    threshold,
    writers,
)
from floodxr.errors import WrongTypeError

__all__ = ["FloodAccessor", "FloodDataArrayAccessor", "FloodDatasetAccessor"]

P = ParamSpec("P")
R = TypeVar("R")


def _forward(func: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """``func`` as a method of the accessor: ``obj.flood.name(...)`` is ``func(obj, ...)``."""

    @functools.wraps(func)
    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        return func(self._obj, *args, **kwargs)

    signature = inspect.signature(func)
    data, *rest = signature.parameters.values()
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(parameters=[self_parameter, *rest])  # type: ignore[attr-defined]
    return method


class FloodAccessor:
    """Flood mapping on xarray objects: ``da.flood.otsu()``, ``ds.flood.to_db()``, ...

    Holds nothing but the wrapped object; every method forwards to a module function with the
    wrapped object as its first argument and returns a new xarray object (lazy when the input
    is). The methods here work on a DataArray and a Dataset alike;
    :class:`FloodDataArrayAccessor` adds those that need one DataArray.

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

    to_db = _forward(preprocess.to_db)
    from_db = _forward(preprocess.from_db)
    normalize = _forward(preprocess.normalize)
    ndwi = _forward(preprocess.ndwi)
    mndwi = _forward(preprocess.mndwi)
    ndvi = _forward(preprocess.ndvi)
    weak_labels = _forward(preprocess.weak_labels)
    otsu_threshold = _forward(threshold.otsu_threshold)
    otsu = _forward(threshold.otsu)
    otsu_tiled = _forward(threshold.otsu_tiled)
    threshold = _forward(threshold.fixed)
    segment = _forward(segment.segment)
    to_zarr = _forward(writers.to_zarr)


class FloodDataArrayAccessor(FloodAccessor):
    """``.flood`` on a DataArray: every :class:`FloodAccessor` method, and those that need one
    DataArray (COG writing, plotting, areas, polygons, scores, terrain masks)."""

    __slots__ = ()

    to_cog = _forward(writers.to_cog)
    plot = _forward(plot.overlay)
    area_km2 = _forward(metrics.water_area_km2)
    confusion = _forward(metrics.confusion)
    to_polygons = _forward(polygons.to_polygons)
    explore = _forward(explore.explore)
    hand = _forward(terrain.hand)
    shadow_layover = _forward(terrain.shadow_layover)
    exclusion = _forward(terrain.exclusion)
    exclude = _forward(terrain.exclude)
    split_water = _forward(terrain.split_water)


class _DataArrayOnlyError(WrongTypeError, AttributeError):
    """A DataArray method asked of a Dataset (an AttributeError too: ``hasattr`` is False)."""


#: What a Dataset's ``.flood`` says when asked for a DataArray-only method.
_PICK_A_VARIABLE = {
    "to_cog": "to_cog writes one DataArray; pick a variable, e.g. ds['water'].flood.to_cog(path)",
    "plot": "plot draws a Sentinel-1 DataArray with a 'band' dim; pick it, "
    "e.g. ds['s1'].flood.plot(water)",
    "area_km2": "area_km2 works on a mask DataArray, not a Dataset; pick the mask variable, "
    "e.g. ds['water'].flood.area_km2()",
    "to_polygons": "to_polygons traces one mask DataArray; pick the mask variable, "
    "e.g. ds['water'].flood.to_polygons()",
    "explore": "explore maps one mask DataArray; pick the mask variable, "
    "e.g. ds['water'].flood.explore()",
    "confusion": "confusion works on a prediction DataArray, not a Dataset; pick the mask "
    "variable, e.g. ds['water'].flood.confusion(label)",
}


# the terrain methods: which variable a Dataset's user most likely means
_PICK_A_VARIABLE |= {
    name: f"{name} works on one DataArray, not a Dataset; pick the {kind}, e.g. "
    f"ds['{kind}'].flood.{name}(...)"
    for name, kind in (
        ("hand", "dem"),
        ("shadow_layover", "dem"),
        ("exclusion", "dem"),
        ("exclude", "water"),
        ("split_water", "water"),
    )
}


class FloodDatasetAccessor(FloodAccessor):
    """``.flood`` on a Dataset: the :class:`FloodAccessor` methods, which work on all of its
    variables at once."""

    __slots__ = ()

    def __getattr__(self, name: str) -> NoReturn:
        if name in _PICK_A_VARIABLE:
            raise _DataArrayOnlyError(_PICK_A_VARIABLE[name])
        raise AttributeError(f"'Dataset.flood' has no attribute {name!r}")


xr.register_dataarray_accessor("flood")(FloodDataArrayAccessor)
xr.register_dataset_accessor("flood")(FloodDatasetAccessor)
