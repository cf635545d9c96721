"""Shared fixtures: the real chips in ../shared, a no-compute dask scheduler, chunkings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask
import pytest
import xarray as xr

import floodxr

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("FLOODXR_SHARED_DATA", REPO.parent / "shared" / "data" / "sen1floods11")
)

#: none (numpy), one chunk for the whole array, and small chunks that cut through everything
CHUNKINGS = [None, "whole", 48]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Sen1Floods11 chips beside the checkout; CI must have them, so it fails there."""
    if not (SHARED_DATA / "S1Hand").is_dir():
        message = f"real chips not found at {SHARED_DATA} (set FLOODXR_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


def _forbidden(*args: object, **kwargs: object) -> None:
    raise AssertionError("a lazy floodxr call computed a dask graph")


@pytest.fixture
def no_compute():
    """Any dask compute inside the block fails the test (xarray's raise_if_dask_computes)."""
    with dask.config.set(scheduler=_forbidden):
        yield


def chunked(obj: xr.DataArray | xr.Dataset, chunking: object) -> xr.DataArray | xr.Dataset:
    """``obj`` as numpy (None), as one dask chunk ("whole"), or in chunks of ``chunking`` px."""
    if chunking is None:
        return obj
    if chunking == "whole":
        return obj.chunk({"y": -1, "x": -1})
    return obj.chunk({"y": chunking, "x": chunking})


@pytest.fixture
def scene() -> xr.Dataset:
    return floodxr.testing.synthetic_scene((160, 144), seed=7)


@pytest.fixture(scope="session")
def loopback(shared_data, tmp_path_factory):
    """A real STAC API on 127.0.0.1 over COGs of the real chips and synthetic neighbours."""
    from floodxr.testing.stac import StacServer, free_port, write_stac_world

    port = free_port()
    world = write_stac_world(
        tmp_path_factory.mktemp("stac"),
        data_dir=shared_data,
        asset_base=f"http://127.0.0.1:{port}/assets",
    )
    with StacServer(world, port=port) as server:
        yield server


#: ``floodxr map`` of the loopback world's Valencia box, with a reference period.
VALENCIA_MAP = [
    "--bbox",
    "-0.05",
    "39.02",
    "-0.02",
    "39.04",
    "--datetime",
    "2019-09-20/2019-09-30",
    "--reference",
    "2019-09-01/2019-09-15",
    "--no-progress",
]


@pytest.fixture(scope="session")
def valencia_map(loopback, tmp_path_factory):
    """One uninterrupted ``floodxr map`` of :data:`VALENCIA_MAP`: ``(out, completed process)``."""
    out = tmp_path_factory.mktemp("map") / "valencia"
    floodxr = str(Path(sys.executable).with_name("floodxr"))
    command = [floodxr, "map", *VALENCIA_MAP, "--catalog", loopback.url, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> str:
    """A small student fitted on synthetic scenes (seconds on a CPU): it really finds water."""
    return str(floodxr.testing.fit_tiny_student(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="session")
def compact_student(tmp_path_factory) -> str:
    """The same, with the compact architecture: a bounded context, run window-free."""
    return str(
        floodxr.testing.fit_tiny_student(
            tmp_path_factory.mktemp("models") / "compact",
            encoder="tu-mobilenetv2_050",
            architecture="deeplabv3plus-s2-compact",
        )
    )
