"""Radar-shadow false positives on the synthetic world, before and after the exclusion mask.

    python benchmarks/terrain_exclusion.py --json

For the first ``--scenes`` hilly scenes of the synthetic training world (seeds from ``--seed``),
the shipped student (or ``--model``) maps water from Sentinel-1 alone; radar shadow is as dark
as water, so some of it comes out as water. The exclusion mask of each scene's DEM
(``dem.flood.exclusion(orbit_state="ascending", incidence_deg=<the scene's>, hand_max_m=None)``:
shadow and layover only, the world's relief has no drainage network) marks those pixels as
nodata. Prints one JSON line: shadow pixels, false positives in shadow before and after, the
fraction removed, and what the mask costs (true water excluded, all pixels excluded).

    python benchmarks/terrain_exclusion.py --through-map --json

runs ``floodxr map`` as a user would (a subprocess) on the loopback STAC world's flooded pass
(:mod:`floodxr.testing.stac`: a cliff in radar shadow and a sand patch, both as dark as water,
beside the river and the lake), once with the defaults (the catalogue's DEM, land cover and
water occurrence) and once with ``--no-exclusion``, and prints for each: water called in the
shadow and on the sand (km²), the water IoU against the truth on the pixels mapped, and the
area excluded.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import floodxr  # noqa: F401  registers the .flood accessor
from floodxr.data.synthetic import paired_scene


def measure(scenes: int, seed: int, model: str, size: int) -> dict[str, Any]:
    totals = dict.fromkeys(("shadow_px", "fp_before", "fp_after", "water_px", "water_excluded"), 0)
    excluded_px = all_px = used = 0
    candidate = seed
    while used < scenes:
        scene = paired_scene((size, size), seed=candidate)
        candidate += 1
        if not scene.attrs["hilly"]:
            continue
        used += 1
        s1 = scene.image.sel(band=["vv", "vh"]).assign_attrs(units="dB")
        water = scene.water.values == 1
        shadow = scene.radar_shadow.values
        found = s1.flood.segment(model=model).values >= 0.5
        excluded = scene.dem.flood.exclusion(
            orbit_state=scene.attrs["orbit_state"],
            incidence_deg=scene.attrs["incidence_deg"],
            hand_max_m=None,
        ).values
        false = found & shadow & ~water
        totals["shadow_px"] += int(shadow.sum())
        totals["fp_before"] += int(false.sum())
        totals["fp_after"] += int((false & ~excluded).sum())
        totals["water_px"] += int(water.sum())
        totals["water_excluded"] += int((water & excluded).sum())
        excluded_px += int(excluded.sum())
        all_px += excluded.size
    return {
        "scenes": scenes,
        "model": model,
        **totals,
        "removed_fraction": round(1 - totals["fp_after"] / max(totals["fp_before"], 1), 4),
        "water_excluded_fraction": round(totals["water_excluded"] / max(totals["water_px"], 1), 4),
        "excluded_fraction": round(excluded_px / all_px, 4),
    }


def through_map(model: str) -> dict[str, Any]:
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import numpy as np
    import rasterio
    from pyproj import Transformer

    from floodxr.grid import block_area_km2
    from floodxr.testing.stac import (
        CLIFF_LON,
        PATCHES,
        SYNTHETIC_BBOX,
        serve_synthetic,
        synthetic_water,
    )

    floodxr_command = str(Path(sys.executable).with_name("floodxr"))
    result: dict[str, Any] = {"model": model}
    with serve_synthetic() as (catalog, _), tempfile.TemporaryDirectory() as folder:
        for name, extra in (("default", []), ("no_exclusion", ["--no-exclusion"])):
            out = Path(folder) / name
            command = [floodxr_command, "map", "--bbox", *map(str, SYNTHETIC_BBOX)]
            command += ["--datetime", "2019-09-25", "--catalog", catalog.url, "--out", str(out)]
            command += ["--model", model, "--no-progress", *extra]
            subprocess.run(command, check=True, capture_output=True)
            path = next(out.glob("*_water.tif"))
            with rasterio.open(path) as src:
                water = src.read(1)
                rows, cols = np.mgrid[0 : src.height, 0 : src.width] + 0.5
                x, y = src.transform * (cols, rows)
                to_lonlat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
                lon, lat = to_lonlat.transform(x, y)
                area = np.broadcast_to(
                    block_area_km2(src.crs, src.transform, range(src.height), range(src.width)),
                    water.shape,
                )
            truth = synthetic_water(lon, lat, 1).astype(bool)
            shadow = (lon > CLIFF_LON[0]) & (lon < CLIFF_LON[1])
            west, south, east, north = PATCHES[60]
            sand = (lon > west) & (lon < east) & (lat > south) & (lat < north)
            mapped = water != 255
            called = water == 1
            iou = (called & truth & mapped).sum() / ((called | truth) & mapped).sum()
            result[name] = {
                "water_in_shadow_km2": round(float(area[called & shadow & ~truth].sum()), 4),
                "water_on_sand_km2": round(float(area[called & sand & ~truth].sum()), 4),
                "false_water_km2": round(float(area[called & ~truth].sum()), 4),
                "water_iou_mapped": round(float(iou), 4),
                "excluded_km2": round(float(area[~mapped].sum()), 4),
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="student")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--through-map", action="store_true", help="floodxr map on the loopback STAC world"
    )
    args = parser.parse_args()
    if args.through_map:
        result = through_map(args.model)
    else:
        result = measure(args.scenes, args.seed, args.model, args.size)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
