"""Shared set-up of the benchmarks: an untrained checkpoint and a lazily generated dB scene."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr

from floodxr import models


def checkpoint(encoder: str, decoder_channels: int,
               architecture: str = "deeplabv3plus-s2") -> Path:  # fmt: skip
    """Speed does not depend on the weights, so an untrained network is enough."""
    from floodxr.models.checkpoint import STRIDE_8

    config = models.STUDENT.replace(encoder=encoder, decoder_channels=decoder_channels,
                                    architecture=architecture,
                                    output_stride=8 if architecture in STRIDE_8 else 16)
    return models.save(config.build(), config, Path(tempfile.mkdtemp()) / "bench")


def scene(side: int, chunk: int, seed: int = 0) -> xr.DataArray:
    """A lazily generated ``(band, y, x)`` dB scene on a UTM grid; chunks exist only when used."""
    rng = dsa.random.default_rng(seed)
    bands = [mean + 4 * rng.standard_normal((side, side), chunks=chunk, dtype="float32")
             for mean in (-12.0, -19.0)]  # fmt: skip
    return xr.DataArray(
        dsa.stack(bands), dims=("band", "y", "x"),
        coords={"band": ["vv", "vh"], "y": 5e6 - 10 * (np.arange(side) + 0.5),
                "x": 5e5 + 10 * (np.arange(side) + 0.5)},
        attrs={"units": "dB"},
    ).rio.write_crs("EPSG:32631")  # fmt: skip
