"""Lazy, chunked, seamless segmentation of Sentinel-1 (and S1 + S2) cubes with a floodxr model.

Dask chunks along ``y``/``x`` are (lazily) re-cut to the network's grid, each chunk is given the
context its windows need from its neighbours (``map_overlap``), and :mod:`floodxr.inference` runs
the network over it: window-free with a thin halo for networks with a bounded context (the
shipped student), blended overlapping windows for networks with global image pooling (the
paper's). Either way any chunking gives the same answer as one big array. NaN input pixels (any
band) give NaN probability (255 in masks).
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
from floodxr._valid import (
    check_db_values,
    check_not_linear_attrs,
    masked,
    require_spatial,
    select_bands,
)
from floodxr.bands import S1_BANDS, XarrayObj
from floodxr.errors import FloodxrError, InvalidOptionError, UnknownModelError
from floodxr.grid import flips_to_north_up
from floodxr.inference import Blended, Plan, WindowFree, predict_block
from floodxr.options import OPTIONS, set_options

__all__ = ["segment", "THRESHOLD_MODELS", "Output"]

Output = Literal["probability", "mask"]
#: Non-network methods that ``segment(model=...)`` also accepts.
THRESHOLD_MODELS = tuple(threshold.METHODS)
#: Window side for a model whose checkpoint does not say what it was trained on (paper: 321).
DEFAULT_TILE = 320
#: Window core of a window-free network (its halo comes on top): CPU inference of a light
#: network is fastest at about 512 px windows (larger ones leave the caches; docs/benchmarks.md).
WINDOW = 512
#: Context a window-free window reads beyond its core, and blended windows' overlap.
FREE_HALO, BLENDED_HALO = 32, 64
#: Attributes that describe the input's values, not the result's.
_INPUT_ONLY_ATTRS = frozenset(
    {
        "units",
        "long_name",
        "_FillValue",
        "scale_factor",
        "add_offset",
        "valid_range",
        "normalization",
    }
)


@dataclass(frozen=True)
class _Spec:
    """Everything a worker needs to predict a block: plain values, no model object."""

    weights: str
    name: str
    device: str
    engine: str
    torch_threads: int
    plan: Plan
    sizes: tuple[int, int]
    chunk_starts: tuple[tuple[int, ...], tuple[int, ...]]
    n_chunks: tuple[int, int]
    low: tuple[float, ...]
    high: tuple[float, ...]
    s1_bands: tuple[int, ...]


_THREAD = threading.local()


def _network(spec: _Spec) -> Any:
    if spec.engine in ("onnx", "onnx-int8"):
        from floodxr.models.onnx import load_session

        return load_session(
            spec.weights,
            threads=spec.torch_threads,
            device=spec.device,
            int8=spec.engine == "onnx-int8",
        )
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


def _engine(engine: str, weights: Any, device: str) -> str:
    """``"auto"``: the checkpoint's int8 model if it has one, else ONNX Runtime when it is
    installed and the model exports, else torch."""
    if engine != "auto":
        return engine
    from floodxr.models import onnx

    if onnx.usable(weights, device=device, int8=True):
        return "onnx-int8"
    return "onnx" if onnx.usable(weights, device=device) else "torch"


def _check_db(raw: np.ndarray, spec: _Spec) -> None:
    if len(spec.s1_bands) == raw.shape[0]:  # all radar: no copy
        check_db_values(raw, "segment")
    elif spec.s1_bands:
        check_db_values(raw[list(spec.s1_bands)], "segment")


def _predict_scene(raw: np.ndarray, origin: tuple[int, int], spec: _Spec) -> np.ndarray:
    """Water probability of the core of one ``(band, y, x)`` block with its context."""
    _check_db(raw, spec)
    low = np.array(spec.low, "float32")[:, None, None]
    high = np.array(spec.high, "float32")[:, None, None]

    def network(batch: np.ndarray) -> np.ndarray:
        # loaded only for blocks with valid pixels; cached per thread
        return _network(spec).water_probability(batch)

    return predict_block(
        raw, spec.plan, network, low=low, high=high, origin=origin, sizes=spec.sizes
    )


def _predict_block(block: np.ndarray, spec: _Spec, block_id: tuple[int, ...]) -> np.ndarray:
    iy, ix = block_id[-2], block_id[-1]
    origin = (spec.chunk_starts[0][iy], spec.chunk_starts[1][ix])
    depth = spec.plan.depth
    if isinstance(spec.plan, WindowFree):
        # dask gave the neighbours' pixels; the scene's own border is mirrored here, as deep as
        # the halo needs even when the scene is smaller than that
        edges = [
            (depth if i == 0 else 0, depth if i == n - 1 else 0)
            for i, n in zip((iy, ix), spec.n_chunks, strict=True)
        ]
        if any(sum(e) for e in edges):
            block = np.pad(block, [(0, 0)] * (block.ndim - 2) + edges, mode="symmetric")
    lead = block.shape[:-3]
    out = np.empty(lead + (block.shape[-2] - 2 * depth, block.shape[-1] - 2 * depth), "float32")
    for index in np.ndindex(lead):
        out[index] = _predict_scene(block[index], origin, spec)
    _release_memory()
    return out


def plan_for(
    config: Any, ny: int, nx: int, *, tile: int | None, halo: int | None, batch_size: int
) -> Plan:
    """How ``segment`` cuts an ``ny`` x ``nx`` scene for the checkpoint ``config``.

    Window-free for a network with a bounded ``context``: cores of ``tile`` px (or
    :data:`WINDOW`) on a grid from the scene's first pixel (which :func:`segment` puts at a
    multiple of the network's stride on the coordinates' lattice), each read with ``halo`` px (or
    :data:`FREE_HALO`; never more than the context) around it, rounded up to the network's
    stride. Blended windows of ``tile`` px (the checkpoint's, or :data:`DEFAULT_TILE`)
    overlapping by ``halo`` (or :data:`BLENDED_HALO`) otherwise.
    """
    from floodxr.models.context import alignment

    if config.context is not None:
        align = alignment(config)
        window = max(align, (tile // align) * align) if tile else WINDOW
        margin = min(FREE_HALO if halo is None else halo, config.context)
        return WindowFree(window=window, halo=-(-margin // align) * align, align=align)
    window = min(tile or config.tile or DEFAULT_TILE, (min(ny, nx) // 16) * 16)
    if window < 16:
        raise InvalidOptionError(
            f"the scene is {ny} x {nx} px; a network needs at least 16 x 16 px"
        )
    halo = BLENDED_HALO if halo is None else halo
    return Blended(window=window, halo=min(halo, window // 2), batch_size=batch_size)


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


def _as_float(da: xr.DataArray) -> xr.DataArray:
    # floodxr.inference treats NaN and +-inf as invalid itself: only a declared nodata value
    # (or an integer dtype) costs a pass over the pixels here
    return masked(da, nonfinite=False)


def _valid_bands(obj: XarrayObj, bands: tuple[str, ...]) -> xr.DataArray:
    """The model's bands of ``obj`` in order as floats, declared nodata as NaN (the kernel
    treats NaN and +-inf as invalid)."""
    s1 = [b for b in bands if b in S1_BANDS]
    if isinstance(obj, xr.Dataset):
        for name in (b for b in s1 if b in obj.data_vars):
            check_not_linear_attrs(obj[name], "segment")
        return select_bands(obj.map(_as_float), bands)
    if s1:
        check_not_linear_attrs(obj, "segment")
    return select_bands(_as_float(obj), bands)


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
    probability.attrs = {"long_name": "water probability", "units": "1", "floodxr_model": method}
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
    engine: Literal["auto", "torch", "onnx", "onnx-int8"] | None = None,
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
    with_overrides = {
        k: v
        for k, v in {
            "tile": tile,
            "halo": halo,
            "batch_size": batch_size,
            "device": device,
            "engine": engine,
        }.items()
        if v is not None
    }
    with set_options(**with_overrides):
        options = dict(OPTIONS)
    from floodxr import models  # torch is imported only when a network is asked for

    models.check_device(options["device"])  # at the call, not when a chunk first computes
    weights = models.resolve(model)
    config = models.read_config(weights)
    da = _valid_bands(obj, config.bands)
    require_spatial(da)
    da = da.transpose(..., "band", "y", "x")
    # the network learnt rows north to south and columns west to east: a scene stored the
    # other way round is flipped (lazily) for it, and its probability flipped back
    flips = flips_to_north_up(da)
    da = da.isel(flips) if flips else da
    ny, nx = da.sizes["y"], da.sizes["x"]
    plan = plan_for(
        config, ny, nx, tile=options["tile"], halo=options["halo"], batch_size=options["batch_size"]
    )
    template = da.isel(band=0, drop=True)
    # a strided network's output depends on where its input starts modulo its stride: start
    # every scene at the same phase of its coordinates, so a pixel gets the same probability
    # whatever box it was asked with (a map and a basin run agree)
    pad = _phase_pad(da, plan.align) if isinstance(plan, WindowFree) else {}
    if pad:
        da = da.pad({dim: (k, 0) for dim, k in pad.items()}, constant_values=np.nan)
        ny, nx = da.sizes["y"], da.sizes["x"]
    lazy = isinstance(da.data, dsa.Array)
    data = da.data if lazy else dsa.from_array(da.data, chunks=-1)
    lead = data.ndim - 3
    data = data.rechunk(
        {
            **{axis: 1 for axis in range(lead)},
            lead: -1,
            lead + 1: plan.aligned_chunks(data.chunks[lead + 1]),
            lead + 2: plan.aligned_chunks(data.chunks[lead + 2]),
        }
    )
    starts = tuple(tuple(int(s) for s in np.cumsum((0,) + c[:-1])) for c in data.chunks[-2:])
    n_blocks = math.prod(len(c) for c in data.chunks)
    spec = _Spec(
        weights=str(weights),
        name=str(model),
        device=options["device"],
        engine=_engine(options["engine"], weights, options["device"]),
        torch_threads=_torch_threads(n_blocks),
        plan=plan,
        sizes=(ny, nx),
        chunk_starts=(starts[0], starts[1]),
        n_chunks=(len(starts[0]), len(starts[1])),
        low=tuple(config.normalization[b][0] for b in config.bands),
        high=tuple(config.normalization[b][1] for b in config.bands),
        s1_bands=tuple(i for i, b in enumerate(config.bands) if b in S1_BANDS),
    )
    # window-free blocks mirror the scene's border themselves (_predict_block), as deep as the
    # halo needs; blended ones get dask's reflection (their depth never exceeds the scene)
    free = isinstance(plan, WindowFree)
    depth = {axis: 0 for axis in range(lead + 1)} | {
        lead + 1 + i: plan.depth if not free or len(starts[i]) > 1 else 0 for i in (0, 1)
    }
    boundary = {axis: "none" for axis in range(lead + 1)} | {
        lead + 1 + i: "none" if free else "reflect" for i in (0, 1)
    }
    # the block function returns its core only, hence trim=False and the output chunks
    probability = dsa.map_overlap(
        _predict_block,
        data,
        depth=depth,
        boundary=boundary,
        trim=False,
        drop_axis=lead,
        chunks=data.chunks[:lead] + data.chunks[lead + 1 :],
        dtype=np.float32,
        meta=np.array((), dtype=np.float32),
        spec=spec,
    )
    if pad:
        probability = probability[..., pad.get("y", 0) :, pad.get("x", 0) :]
    result = template.copy(data=probability if lazy else probability.compute())
    kept = {k: v for k, v in da.attrs.items() if k not in _INPUT_ONLY_ATTRS}
    result.attrs = kept | {
        "long_name": "water probability",
        "units": "1",
        "valid_range": [0.0, 1.0],
        "floodxr_model": config.name,
        "floodxr_checkpoint": str(weights),
        "floodxr_cut": config.cut,  # the checkpoint's water cut: masks and maps use it
    }
    result = result.rename("water_probability")
    if flips:
        result = result.isel(flips)  # back in the input's own order, on its coordinates
    if output == "mask":
        return _to_mask(result)
    return result


def _phase_pad(da: xr.DataArray, align: int) -> dict[str, int]:
    """NaN rows and columns to put before a north-up ``da`` so that its first pixel's index on
    its coordinates' lattice (coordinate / pixel size, from 0) is a multiple of ``align``;
    nothing for an array without regular ``y``/``x`` coordinates."""
    from floodxr.grid import transform

    if align <= 1 or "x" not in da.coords or "y" not in da.coords or min(da.shape[-2:]) < 2:
        return {}
    try:
        grid = transform(da)
    except FloodxrError:
        return {}
    if grid.b or grid.d or not grid.a or not grid.e:
        return {}
    column = math.floor(grid.c / grid.a + 1e-6)
    row = math.floor(grid.f / grid.e + 1e-6)
    pad = {"y": row % align, "x": column % align}
    return {k: v for k, v in pad.items() if v}


def _mask_block(probability: np.ndarray, cut: float) -> np.ndarray:
    mask = (probability >= cut).astype(np.uint8)
    mask[np.isnan(probability)] = threshold.NODATA
    return mask


def water_cut(probability: xr.DataArray) -> float:
    """The probability at and above which ``probability`` is water: its model's cut (0.5 if
    the probability does not name one)."""
    return float(probability.attrs.get("floodxr_cut", 0.5))


def _to_mask(probability: xr.DataArray) -> xr.DataArray:
    mask = xr.apply_ufunc(
        _mask_block,
        probability,
        kwargs={"cut": water_cut(probability)},
        dask="parallelized",
        output_dtypes=[np.uint8],
    )
    kept = {k: v for k, v in probability.attrs.items() if k not in ("units", "valid_range")}
    mask.attrs = kept | {
        "long_name": "water mask",
        "flag_values": [0, 1],
        "flag_meanings": "not_water water",
    }
    return mask.rio.write_nodata(threshold.NODATA, encoded=False).rename("water")
