"""Shared set-up of the benchmarks: an untrained checkpoint and a lazily generated dB scene."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr

from floodxr import models


def checkpoint(encoder: str, decoder_channels: int, architecture: str = "deeplabv3plus-s2") -> Path:
    """Speed does not depend on the weights, so an untrained network is enough."""
    from floodxr.models.checkpoint import STRIDE_8

    config = models.STUDENT.replace(
        encoder=encoder,
        decoder_channels=decoder_channels,
        architecture=architecture,
        output_stride=8 if architecture in STRIDE_8 else 16,
    )
    return models.save(config.build(), config, Path(tempfile.mkdtemp()) / "bench")


def scene(side: int, chunk: int, seed: int = 0) -> xr.DataArray:
    """A lazily generated ``(band, y, x)`` dB scene on a UTM grid: VV about -12 dB and VH about
    -19 dB with 4 dB of noise, both bands in each ``chunk`` px dask chunk (as a reader of a
    two-band COG gives them), generated only when used and the same for any scheduler."""

    def noise(block_info: dict | None = None) -> np.ndarray:
        info = block_info[None]  # type: ignore[index]
        (y0, y1), (x0, x1) = info["array-location"][1:]
        rng = np.random.default_rng([seed, *info["chunk-location"][1:]])
        values = rng.standard_normal((2, y1 - y0, x1 - x0), dtype="float32")
        values *= 4.0
        values += np.array([-12.0, -19.0], "float32")[:, None, None]
        return values

    chunks = (
        (2,),
        dsa.core.normalize_chunks(chunk, (side,))[0],
        dsa.core.normalize_chunks(chunk, (side,))[0],
    )
    data = dsa.map_blocks(noise, chunks=chunks, dtype="float32", meta=np.array((), "float32"))
    return xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": ["vv", "vh"],
            "y": 5e6 - 10 * (np.arange(side) + 0.5),
            "x": 5e5 + 10 * (np.arange(side) + 0.5),
        },
        attrs={"units": "dB"},
    ).rio.write_crs("EPSG:32631")
