"""Helpers for tests, doctests and demos: small Sentinel-1 scenes with known water, geo
assertions, a tiny trained student; ``floodxr.testing.stac`` serves scenes through a STAC API on
loopback. No floodxr module imports this package (the training world is
:mod:`floodxr.data.synthetic`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine

from floodxr.errors import ShapeMismatchError
from floodxr.grid import coords, north_up

__all__ = [
    "synthetic_scene",
    "north_up_grid",
    "assert_geo_equal",
    "fit_tiny_student",
    "WATER_DB",
    "LAND_DB",
]

#: Mean backscatter (dB) of calm water and of land per polarisation in the synthetic scenes.
WATER_DB: Mapping[str, float] = {"vv": -22.0, "vh": -29.0}
LAND_DB: Mapping[str, float] = {"vv": -9.0, "vh": -16.0}


def _water_mask(ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
    """A meandering river plus an elliptical lake, about a quarter of the scene."""
    yy, xx = np.mgrid[0:ny, 0:nx].astype("float64")
    phase = rng.uniform(0, 2 * np.pi)
    centre = nx * (0.35 + 0.1 * np.sin(2 * np.pi * yy / ny * 1.5 + phase))
    river = np.abs(xx - centre) < nx * 0.07
    cy, cx = rng.uniform(0.3, 0.7) * ny, rng.uniform(0.65, 0.8) * nx
    lake = ((yy - cy) / (0.22 * ny)) ** 2 + ((xx - cx) / (0.15 * nx)) ** 2 < 1.0
    return (river | lake).astype("int8")


def north_up_grid(
    shape: tuple[int, int], origin: tuple[float, float], resolution: float
) -> tuple[Affine, np.ndarray, np.ndarray]:
    """The transform and pixel-centre ``y``, ``x`` coordinates of a north-up grid.

    Examples
    --------
    >>> from floodxr.testing import north_up_grid
    >>> transform, y, x = north_up_grid((2, 3), (500_000.0, 5_000_000.0), 10.0)
    >>> transform.c, y.tolist(), x.tolist()
    (500000.0, [4999995.0, 4999985.0], [500005.0, 500015.0, 500025.0])
    """
    box = north_up(shape, origin, resolution, "EPSG:32633")  # the CRS plays no part here
    axes = coords(box)
    return box.affine, axes["y"], axes["x"]


def synthetic_scene(
    shape: tuple[int, int] = (256, 256),
    *,
    seed: int = 0,
    crs: str = "EPSG:32633",
    resolution: float = 10.0,
    origin: tuple[float, float] = (500_000.0, 5_000_000.0),
    looks: float = 4.4,
    water: np.ndarray | None = None,
    chunks: int | Mapping[str, int] | None = None,
) -> xr.Dataset:
    """A Sentinel-1 scene with known water: ``s1`` ``(band, y, x)`` in dB and ``water`` ``(y, x)``.

    Water and land have per-polarisation mean backscatter (:data:`WATER_DB`, :data:`LAND_DB`)
    with multiplicative gamma speckle of ``looks`` looks applied in linear power, as in GRD data.

    Parameters
    ----------
    shape : (rows, columns)
    seed : random seed; the same seed gives the same scene
    crs, resolution, origin : the grid (north-up; ``origin`` is the top-left corner)
    looks : equivalent number of looks of the speckle
    water : a ``shape`` array of 0/1 to use as the true water; default a river and a lake
    chunks : None for numpy, else dask chunks for ``y`` and ``x``

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene((64, 96), seed=1)
    >>> scene.s1.dims, scene.s1.shape, str(scene.rio.crs), scene.s1.attrs["units"]
    (('band', 'y', 'x'), (2, 64, 96), 'EPSG:32633', 'dB')
    """
    ny, nx = shape
    rng = np.random.default_rng(seed)
    if water is None:
        water = _water_mask(ny, nx, rng)
    elif water.shape != (ny, nx):
        raise ShapeMismatchError(f"water has shape {water.shape}, expected {(ny, nx)}")
    water = np.asarray(water, dtype="int8")
    bands = []
    for band in ("vv", "vh"):
        mean_db = np.where(water == 1, WATER_DB[band], LAND_DB[band])
        power = 10 ** (mean_db / 10) * rng.gamma(looks, 1.0 / looks, size=shape)
        bands.append(10 * np.log10(power))
    transform, y, x = north_up_grid((ny, nx), origin, resolution)
    scene = xr.Dataset(
        {
            "s1": (
                ("band", "y", "x"),
                np.stack(bands).astype("float32"),
                {"units": "dB", "long_name": "synthetic Sentinel-1 backscatter"},
            ),
            "water": (("y", "x"), water, {"long_name": "true water mask", "flag_values": [0, 1]}),
        },
        coords={"band": ["vv", "vh"], "y": y, "x": x},
    )
    scene = scene.rio.write_crs(crs).rio.write_transform(transform)
    if chunks is not None:
        sizes = chunks if isinstance(chunks, Mapping) else {"y": chunks, "x": chunks}
        scene = scene.chunk(dict(sizes))
    return scene


def assert_geo_equal(
    actual: xr.DataArray | xr.Dataset, expected: xr.DataArray | xr.Dataset
) -> None:
    """Assert that two objects share CRS, transform and ``y``/``x`` coordinates.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> floodxr.testing.assert_geo_equal(scene.s1.flood.otsu(), scene.s1)
    """
    assert actual.rio.crs == expected.rio.crs, f"CRS {actual.rio.crs} != {expected.rio.crs}"
    assert actual.rio.transform() == expected.rio.transform(), (
        f"transform {actual.rio.transform()} != {expected.rio.transform()}"
    )
    for dim in ("y", "x"):  # the values, not the scalar coordinates that ride along
        np.testing.assert_array_equal(actual[dim].values, expected[dim].values, err_msg=dim)


def fit_tiny_student(
    path: str | Path,
    *,
    encoder: str = "tu-mobilenetv3_large_100",
    decoder_channels: int = 32,
    steps: int = 40,
    seed: int = 0,
    architecture: str = "deeplabv3plus-s2",
) -> Path:
    """Fit a small student on synthetic scenes for a few seconds and save it as a checkpoint.

    For tests, demos and doctests that need a network which really finds water, on any machine
    and offline. It is *not* the paper's training (see ``floodxr.train``): plain cross-entropy,
    SGD, 8 synthetic 128 px scenes. ``architecture="deeplabv3plus-s2-compact"`` (output stride
    8) gives a network with a bounded context, which ``segment`` runs window-free. Returns the
    weights path.

    Examples
    --------
    >>> import tempfile, floodxr
    >>> path = floodxr.testing.fit_tiny_student(tempfile.mkdtemp() + "/tiny")
    >>> scene = floodxr.testing.synthetic_scene((200, 200), seed=42)
    >>> probability = scene.s1.flood.segment(model=str(path), tile=128, halo=32)
    >>> floodxr.metrics.iou(probability, scene.water) > 0.9
    True
    """
    import torch

    from floodxr import models
    from floodxr.models.checkpoint import STRIDE_8
    from floodxr.preprocess import normalize

    torch.manual_seed(seed)
    config = models.STUDENT.replace(
        name="tiny-student",
        encoder=encoder,
        decoder_channels=decoder_channels,
        architecture=architecture,
        output_stride=8 if architecture in STRIDE_8 else 16,
        provenance={
            "data": "floodxr.testing.synthetic_scene seeds 0-7, 128 px",
            "steps": steps,
            "seed": seed,
            "trainer": "floodxr.testing.fit_tiny_student",
        },
    )
    network = config.build()
    scenes = [synthetic_scene((128, 128), seed=seed + k) for k in range(8)]
    images = torch.from_numpy(np.stack([normalize(s.s1).values for s in scenes]))
    labels = torch.from_numpy(np.stack([s.water.values for s in scenes])).long()
    optimiser = torch.optim.SGD(network.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    network.train()
    for _ in range(steps):
        batch = torch.randint(0, len(scenes), (4,), generator=generator)
        loss = torch.nn.functional.cross_entropy(network(images[batch]), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return models.save(network.eval(), config, path)
