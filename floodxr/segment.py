"""Lazy, tiled, seamless segmentation of Sentinel-1 (and S1 + S2) cubes with a floodxr model.

How a scene is cut, so that any chunking gives the same answer as one big array:

* The network sees square **windows** of ``tile`` px on one grid anchored at the scene's
  top-left pixel, with a step of ``tile - halo``: neighbours overlap by ``halo`` px.
* Every window's water probability is weighted by a ramp that rises over ``halo`` px from each
  edge, and overlapping windows are blended by their weights. A pixel therefore always gets the
  same windows with the same weights, whichever chunk computes it.
* Dask chunks along ``y``/``x`` are (lazily) re-cut to multiples of the step, and
  ``map_overlap`` gives each chunk one step of context on every side (reflected at the scene's
  border), which is exactly what the windows touching its pixels need. Windows that straddle a
  chunk border are computed by both chunks: bigger chunks waste less.

Windows whose pixels are all NaN are skipped; NaN input pixels (any band) give NaN probability
(255 in masks); inside a window they are filled with 0 (the bottom of the normalised range) so
the network still sees their neighbours.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from floodxr import threshold
from floodxr._bands import S1_BANDS, XarrayObj, require_spatial, select_bands
from floodxr._valid import check_db_values, check_not_linear_attrs, masked
from floodxr.errors import InvalidOptionError, UnknownModelError
from floodxr.options import OPTIONS, set_options
from floodxr.preprocess import clip_scale

__all__ = ["segment", "THRESHOLD_MODELS", "Output"]

Output = Literal["probability", "mask"]
#: Non-network methods that ``segment(model=...)`` also accepts.
THRESHOLD_MODELS = tuple(threshold.METHODS)
#: Window side for a model whose checkpoint does not say what it was trained on (paper: 321).
DEFAULT_TILE = 320
#: Attributes that describe the input's values, not the result's.
_INPUT_ONLY_ATTRS = frozenset({"units", "long_name", "_FillValue", "scale_factor", "add_offset",
                               "valid_range", "normalization"})  # fmt: skip


@dataclass(frozen=True)
class _Plan:
    """Window side, overlap and step for a scene of ``ny`` x ``nx`` pixels."""

    window: int
    halo: int

    @property
    def step(self) -> int:
        return self.window - self.halo

    @classmethod
    def for_scene(cls, ny: int, nx: int, tile: int, halo: int) -> _Plan:
        window = min(tile, (min(ny, nx) // 16) * 16)
        if window < 16:
            raise InvalidOptionError(
                f"the scene is {ny} x {nx} px; a network needs at least 16 x 16 px"
            )
        return cls(window=window, halo=min(halo, window // 2))

    def starts(self, n: int) -> list[int]:
        """Window starts on the global grid: 0, step, ... until a window reaches ``n``."""
        last = max(0, math.ceil((n - self.window) / self.step)) * self.step
        return list(range(0, last + 1, self.step))

    def starts_touching(self, n: int, offset: int, length: int) -> list[int]:
        """Global starts of the windows that overlap pixels ``[offset, offset + length)``."""
        return [g for g in self.starts(n) if g < offset + length and g + self.window > offset]

    def ramp(self) -> np.ndarray:
        edge = np.arange(self.window, dtype="float32") + 0.5
        ramp = np.minimum(edge, self.window - edge + 1.0) / max(self.halo, 1)
        return np.minimum(ramp, 1.0)

    def aligned_chunks(self, chunks: tuple[int, ...]) -> tuple[int, ...]:
        """Chunks that start on multiples of the step, none thinner than one step."""
        n = sum(chunks)
        size = max(self.step, round(max(chunks) / self.step) * self.step)
        aligned = [size] * (n // size)
        rest = n - sum(aligned)
        if rest and aligned and rest < self.step:
            aligned[-1] += rest
        elif rest:
            aligned.append(rest)
        return tuple(aligned)


@dataclass(frozen=True)
class _Spec:
    """Everything a worker needs to predict a block: plain values, no model object."""

    weights: str
    name: str
    device: str
    engine: str
    batch_size: int
    torch_threads: int
    plan: _Plan
    sizes: tuple[int, int]
    chunk_starts: tuple[tuple[int, ...], tuple[int, ...]]
    low: tuple[float, ...]
    high: tuple[float, ...]
    s1_bands: tuple[int, ...]


_THREAD = threading.local()


def _network(spec: _Spec) -> Any:
    if spec.engine == "onnx":
        from floodxr.models.onnx import load_session

        return load_session(spec.weights, threads=spec.torch_threads)
    import torch

    from floodxr import models

    # OpenMP's thread count is per calling thread: set it in every worker thread, once
    if getattr(_THREAD, "torch_threads", None) != spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
        _THREAD.torch_threads = spec.torch_threads
    # a name registered in this process (floodxr.basin ships checkpoints to workers that way)
    # wins over the client's path, which a remote worker may not have
    known = spec.name in models.available()
    return models.load(spec.name if known else spec.weights, device=spec.device)


def _check_db(raw: np.ndarray, spec: _Spec) -> None:
    if spec.s1_bands:
        check_db_values(raw[list(spec.s1_bands)], "segment")


def _predict_scene(raw: np.ndarray, origin: tuple[int, int], spec: _Spec) -> np.ndarray:
    """Blended water probability of the core of one padded ``(band, y, x)`` block."""
    plan, step = spec.plan, spec.plan.step
    core_y, core_x = raw.shape[-2] - 2 * step, raw.shape[-1] - 2 * step
    _check_db(raw, spec)
    low = np.array(spec.low, "float32")[:, None, None]
    high = np.array(spec.high, "float32")[:, None, None]
    invalid = ~np.isfinite(raw).all(axis=0)

    def window(y: int, x: int) -> np.ndarray:
        # normalised per window, not per block: a block copy would double its memory
        scaled = clip_scale(raw[:, y : y + plan.window, x : x + plan.window], low, high)
        scaled[np.isnan(scaled)] = 0.0
        return scaled

    def local(n: int, offset: int, core: int) -> list[int]:
        return [g - offset + step for g in plan.starts_touching(n, offset, core)]

    windows = [
        (wy, wx)
        for wy in local(spec.sizes[0], origin[0], core_y)
        for wx in local(spec.sizes[1], origin[1], core_x)
        if not invalid[wy : wy + plan.window, wx : wx + plan.window].all()
    ]
    if not windows:  # nothing valid in this block: no network needed
        return np.full((core_y, core_x), np.nan, "float32")
    network = _network(spec)  # once per block; the loaded model is cached per thread
    numerator = np.zeros((core_y, core_x), "float32")
    denominator = np.zeros((core_y, core_x), "float32")
    weight = np.outer(plan.ramp(), plan.ramp())
    for first in range(0, len(windows), spec.batch_size):
        batch = windows[first : first + spec.batch_size]
        stack = np.stack([window(y, x) for y, x in batch])
        probabilities = network.water_probability(stack)
        for (y, x), probability in zip(batch, probabilities, strict=True):
            y0, x0 = max(y, step), max(x, step)
            y1, x1 = min(y + plan.window, step + core_y), min(x + plan.window, step + core_x)
            w = weight[y0 - y : y1 - y, x0 - x : x1 - x]
            numerator[y0 - step : y1 - step, x0 - step : x1 - step] += (
                w * probability[y0 - y : y1 - y, x0 - x : x1 - x]
            )
            denominator[y0 - step : y1 - step, x0 - step : x1 - step] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        result = numerator / denominator
    result[denominator == 0] = np.nan
    result[invalid[step : step + core_y, step : step + core_x]] = np.nan
    return result


def _predict_block(block: np.ndarray, spec: _Spec, block_id: tuple[int, ...]) -> np.ndarray:
    origin = (spec.chunk_starts[0][block_id[-2]], spec.chunk_starts[1][block_id[-1]])
    step = spec.plan.step
    lead = block.shape[:-3]
    out = np.empty(lead + (block.shape[-2] - 2 * step, block.shape[-1] - 2 * step), "float32")
    for index in np.ndindex(lead):
        out[index] = _predict_scene(block[index], origin, spec)
    _release_memory()
    return out


def _release_memory() -> None:
    """Hand freed heap back to the OS after a block (glibc keeps it per thread otherwise)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, Windows, musl): nothing to trim
        return None


_LIBC = _load_libc()


def _valid_bands(obj: XarrayObj, bands: tuple[str, ...]) -> xr.DataArray:
    """The model's bands of ``obj`` in order, invalid pixels (each array's nodata) as NaN."""
    s1 = [b for b in bands if b in S1_BANDS]
    if isinstance(obj, xr.Dataset):
        for name in (b for b in s1 if b in obj.data_vars):
            check_not_linear_attrs(obj[name], "segment")
        return select_bands(obj.map(masked), bands)
    if s1:
        check_not_linear_attrs(obj, "segment")
    return select_bands(masked(obj), bands)


def _torch_threads(n_blocks: int) -> int:
    if OPTIONS["torch_threads"] is not None:
        return int(OPTIONS["torch_threads"])
    cores = os.cpu_count() or 1
    dask_threads = dask.config.get("num_workers", None) or cores
    return max(1, cores // max(1, min(n_blocks, dask_threads)))


def _threshold_segment(obj: XarrayObj, method: str, output: Output) -> xr.DataArray:
    mask = threshold.METHODS[method](obj)
    if output == "mask":
        return mask
    probability = mask.where(mask != threshold.NODATA).astype("float32")
    probability.attrs = {"long_name": "water probability", "units": "1",
                         "floodxr_model": method}  # fmt: skip
    return probability.rename("water_probability")


def segment(
    obj: XarrayObj,
    *,
    model: str = "student",
    output: Output = "probability",
    tile: int | None = None,
    halo: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    engine: Literal["torch", "onnx"] | None = None,
) -> xr.DataArray:
    """Water probability (or mask) of a Sentinel-1 cube from a floodxr model, chunk by chunk.

    Parameters
    ----------
    obj : DataArray with a ``band`` dim holding the model's bands, dims ``(band, y, x)`` or
        ``(time, band, y, x)`` (any leading dims), in dB; or a Dataset with one variable per
        band. Numpy- or dask-backed.
    model : a registered name (``floodxr.models.available()``), a checkpoint path, or
        ``"otsu"`` / ``"otsu-tiled"`` for the thresholding baselines.
    output : ``"probability"`` (float32 in [0, 1], NaN where the input is invalid) or
        ``"mask"`` (uint8: 1 water, 0 not water, 255 nodata).
    tile, halo, batch_size, device, engine : override :func:`floodxr.set_options` for this call.

    Returns
    -------
    DataArray
        Dims of ``obj`` without ``band``; coordinates, CRS and transform kept. Lazy for dask input;
        computed for numpy input. The checkpoint is checked (bands, shapes) before anything runs.

    Examples
    --------
    >>> import tempfile, floodxr
    >>> from floodxr import models
    >>> config = models.STUDENT.replace(encoder="resnet18")
    >>> path = models.save(config.build(), config, tempfile.mkdtemp() + "/untrained")
    >>> scene = floodxr.testing.synthetic_scene((96, 96), seed=0, chunks=48)
    >>> probability = scene.s1.flood.segment(model=str(path), tile=64, halo=16)
    >>> probability.dims, type(probability.data).__name__, str(probability.dtype)
    (('y', 'x'), 'Array', 'float32')
    >>> float(probability.min()) >= 0 and float(probability.max()) <= 1
    True
    """
    if output not in ("probability", "mask"):
        raise InvalidOptionError(f"output must be 'probability' or 'mask', got {output!r}")
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise UnknownModelError(
            f"model must be a registered name, a checkpoint path or one of {THRESHOLD_MODELS}, "
            f"got {model!r}; e.g. segment(model='student')"
        )
    if model in THRESHOLD_MODELS:
        return _threshold_segment(obj, model, output)
    with_overrides = {k: v for k, v in {"tile": tile, "halo": halo, "batch_size": batch_size,
                                        "device": device, "engine": engine}.items()
                      if v is not None}  # fmt: skip
    with set_options(**with_overrides):
        options = dict(OPTIONS)
    from floodxr import models  # torch is imported only when a network is asked for

    weights = models.resolve(model)
    config = models.read_config(weights)
    da = _valid_bands(obj, config.bands)
    require_spatial(da)
    da = da.transpose(..., "band", "y", "x")
    ny, nx = da.sizes["y"], da.sizes["x"]
    tile = options["tile"] or config.tile or DEFAULT_TILE
    plan = _Plan.for_scene(ny, nx, tile, options["halo"])
    lazy = isinstance(da.data, dsa.Array)
    data = da.data if lazy else dsa.from_array(da.data, chunks=-1)
    lead = data.ndim - 3
    data = data.rechunk(
        {**{axis: 1 for axis in range(lead)}, lead: -1,
         lead + 1: plan.aligned_chunks(data.chunks[lead + 1]),
         lead + 2: plan.aligned_chunks(data.chunks[lead + 2])}
    )  # fmt: skip
    starts = tuple(tuple(int(s) for s in np.cumsum((0,) + c[:-1])) for c in data.chunks[-2:])
    n_blocks = math.prod(len(c) for c in data.chunks)
    spec = _Spec(
        weights=str(weights),
        name=str(model),
        device=options["device"],
        engine=options["engine"],
        batch_size=options["batch_size"],
        torch_threads=_torch_threads(n_blocks),
        plan=plan,
        sizes=(ny, nx),
        chunk_starts=(starts[0], starts[1]),
        low=tuple(config.normalization[b][0] for b in config.bands),
        high=tuple(config.normalization[b][1] for b in config.bands),
        s1_bands=tuple(i for i, b in enumerate(config.bands) if b in S1_BANDS),
    )
    depth = {axis: 0 for axis in range(lead + 1)} | {lead + 1: plan.step, lead + 2: plan.step}
    boundary = {axis: "none" for axis in range(lead + 1)} | {
        lead + 1: "reflect",
        lead + 2: "reflect",
    }
    # the block function returns its core only, hence trim=False and the output chunks
    probability = dsa.map_overlap(
        _predict_block, data, depth=depth, boundary=boundary, trim=False, drop_axis=lead,
        chunks=data.chunks[:lead] + data.chunks[lead + 1 :], dtype=np.float32,
        meta=np.array((), dtype=np.float32), spec=spec,
    )  # fmt: skip
    template = da.isel(band=0, drop=True)
    result = template.copy(data=probability if lazy else probability.compute())
    kept = {k: v for k, v in da.attrs.items() if k not in _INPUT_ONLY_ATTRS}
    result.attrs = kept | {"long_name": "water probability", "units": "1",
                           "valid_range": [0.0, 1.0], "floodxr_model": config.name,
                           "floodxr_checkpoint": str(weights)}  # fmt: skip
    result = result.rename("water_probability")
    if output == "mask":
        return _to_mask(result)
    return result


def _mask_block(probability: np.ndarray) -> np.ndarray:
    mask = (probability >= 0.5).astype(np.uint8)
    mask[np.isnan(probability)] = threshold.NODATA
    return mask


def _to_mask(probability: xr.DataArray) -> xr.DataArray:
    mask = xr.apply_ufunc(_mask_block, probability, dask="parallelized", output_dtypes=[np.uint8])
    kept = {k: v for k, v in probability.attrs.items() if k not in ("units", "valid_range")}
    mask.attrs = kept | {"long_name": "water mask", "flag_values": [0, 1],
                         "flag_meanings": "not_water water"}  # fmt: skip
    return mask.rio.write_nodata(threshold.NODATA, encoded=False).rename("water")
