"""The store of a basin run: a Zarr store with one group per basin, and its manifest.

One group per basin id, each an xarray Dataset on the basin's own grid: ``probability``
(time, y, x) float32, NaN outside the polygon and where no scene looked; ``water`` (time, y, x)
uint8, 1 water, 0 not water, 255 nodata (also where excluded); ``exclusion`` (time, y, x)
uint8, the reasons a pixel says nothing (:data:`floodxr.product.FLAGS`, 0 mapped);
``reference`` (y, x) uint8 when a reference was given;
the CRS as the ``spatial_ref`` coordinate. New passes are appended along ``time``.
``manifest.json`` records the run's settings and every finished unit with its areas; only the
client writes it, atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as dsa
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from floodxr.bands import NODATA
from floodxr.basin.inputs import Basin
from floodxr.errors import RunMismatchError
from floodxr.grid import coords
from floodxr.product import AREAS, FLAGS
from floodxr.writers import atomic

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AREAS", "MANIFEST", "Store", "atomic_csv", "grid_record"]

FORMAT = "floodxr-basin/2"
MANIFEST = "manifest.json"


def grid_record(box: GeoBox) -> dict[str, Any]:
    """A basin grid as the manifest records it."""
    ny, nx = box.shape
    return {
        "epsg": box.crs.epsg,  # type: ignore[union-attr]
        "resolution": box.resolution.x,
        "west": box.affine.c,
        "north": box.affine.f,
        "ny": ny,
        "nx": nx,
    }


class Store:
    """The Zarr store with its manifest; only the client writes the manifest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_path = path / MANIFEST
        if self.manifest_path.is_file():
            self.manifest = json.loads(self.manifest_path.read_text())
        else:
            if path.exists() and any(path.iterdir()):
                raise RunMismatchError(
                    f"{str(path)!r} exists and is not a floodxr basin store (no {MANIFEST}); "
                    "choose a new --store"
                )
            self.manifest = {
                "format": FORMAT,
                "settings": None,
                "basins": {},
                "units": {},
                "references": {},
            }

    def save(self) -> None:
        with atomic(self.manifest_path, overwrite=True) as partial:  # the store's own record
            partial.write_text(json.dumps(self.manifest, indent=1, sort_keys=True))

    def check_settings(self, settings: dict[str, Any]) -> None:
        old = self.manifest["settings"]
        if old is None:
            self.manifest["settings"] = settings
            return
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            detail = "; ".join(
                f"{k}: store has {a!r}, asked {b!r}" for k, (a, b) in changed.items()
            )
            raise RunMismatchError(
                f"{str(self.path)!r} was made with other settings ({detail}); run with the same "
                "settings to resume, or choose a new --store"
            )

    def check_basin(self, basin: Basin, grid: GeoBox) -> None:
        entry = {
            "fingerprint": basin.fingerprint(),
            "grid": grid_record(grid),
            "basin_km2": basin.area_km2,
        }
        old = self.manifest["basins"].setdefault(basin.id, entry)
        if old["fingerprint"] != entry["fingerprint"]:
            raise RunMismatchError(
                f"basin {basin.id!r} in {str(self.path)!r} has another polygon than the one "
                "given now; give it a new id, or choose a new --store"
            )

    def times(self, basin_id: str) -> list[np.datetime64]:
        if not (self.path / basin_id).exists():
            return []
        with xr.open_zarr(self.path, group=basin_id, consolidated=False) as ds:
            return [np.datetime64(t, "ns") for t in ds["time"].values]

    def add_times(self, basin: Basin, grid: GeoBox, times: list[np.datetime64], chunk: int) -> None:
        """Create the basin's group, or append ``times`` to it (metadata and coordinates only)."""
        if not times:
            return
        shape = (len(times), *grid.shape)
        chunks = (1, chunk, chunk)
        epsg = grid.crs.epsg  # type: ignore[union-attr]
        probability = dsa.full(shape, np.nan, dtype="float32", chunks=chunks)
        water = dsa.full(shape, NODATA, dtype="uint8", chunks=chunks)
        exclusion = dsa.full(shape, FLAGS["no_data"], dtype="uint8", chunks=chunks)
        ds = xr.Dataset(
            {
                "probability": (
                    ("time", "y", "x"),
                    probability,
                    {"long_name": "water probability", "units": "1"},
                ),
                "water": (
                    ("time", "y", "x"),
                    water,
                    {
                        "long_name": "water mask",
                        "flag_values": [0, 1],
                        "flag_meanings": "not_water water",
                    },
                ),
                "exclusion": (
                    ("time", "y", "x"),
                    exclusion,
                    {
                        "long_name": "exclusion reasons",
                        "flag_masks": list(FLAGS.values()),
                        "flag_meanings": " ".join(FLAGS),
                    },
                ),
            },
            coords={**coords(grid), "time": np.array(times, dtype="datetime64[ns]")},
            attrs={"basin_id": basin.id, "crs": f"EPSG:{epsg}"},
        )
        ds = ds.rio.write_crs(f"EPSG:{epsg}").rio.write_transform(grid.affine)
        for name in ("probability", "water", "exclusion"):
            ds[name].attrs["grid_mapping"] = "spatial_ref"
        if (self.path / basin.id).exists():
            ds.to_zarr(
                self.path, group=basin.id, append_dim="time", compute=False, consolidated=False
            )
        else:
            encoding = {
                "probability": {"_FillValue": np.float32(np.nan)},
                "water": {"_FillValue": np.uint8(NODATA)},
                "exclusion": {"_FillValue": np.uint8(FLAGS["no_data"])},
                "time": {"units": "microseconds since 1970-01-01", "dtype": "int64"},
            }
            ds.to_zarr(
                self.path,
                group=basin.id,
                mode="w-",
                compute=False,
                consolidated=False,
                encoding=encoding,
            )

    def add_reference(self, basin: Basin, grid: GeoBox, chunk: int) -> None:
        import zarr

        group = zarr.open_group(str(self.path / basin.id), mode="r+")
        if "reference" not in group:
            array = group.create_array(
                "reference",
                shape=tuple(grid.shape),
                dtype="uint8",
                chunks=(chunk, chunk),
                fill_value=NODATA,
                dimension_names=("y", "x"),
            )
            array.attrs.update(
                {
                    "long_name": "reference water",
                    "flag_values": [0, 1],
                    "flag_meanings": "not_water water",
                    "_FillValue": NODATA,
                    "grid_mapping": "spatial_ref",
                }
            )


def atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic(path, overwrite=True) as partial:  # the store's table, rewritten as it grows
        frame.to_csv(partial, index=False)
