"""Search a STAC API for Sentinel-1 over an area and dates, map the water, write COGs and a PNG.

    python examples/stac_flood_map.py --bbox -0.45 39.2 -0.25 39.4 \\
        --datetime 2019-09-10/2019-09-20 --out valencia

By default it asks the Microsoft Planetary Computer (``sentinel-1-rtc``; install
``floodxr[planetary]`` to read its pixels). Any STAC API works: ``--stac URL`` with
``--profile planetary-computer`` when the API mirrors that catalog's collections, or
``--collection ID --vv KEY --vh KEY --units dB|linear`` to describe its Sentinel-1 collection.
Frames of one pass are mosaicked; each date gets ``water_<date>.tif`` (0 / 1, 255 nodata) and
the run prints the water area per date and writes ``flood_map.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import floodxr  # noqa: E402,F401  registers the .flood accessor
from floodxr.data import stac  # noqa: E402


def catalog_from(args: argparse.Namespace) -> stac.Catalog:
    if args.collection:
        s1 = stac.Collection(args.collection, {"vv": args.vv, "vh": args.vh}, units=args.units)
        return stac.Catalog(name=args.stac or "custom", url=args.stac, s1=s1)
    profile = stac.get_catalog(args.profile)
    return profile.with_url(args.stac) if args.stac else profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stac", help="STAC API URL (default: the profile's)")
    parser.add_argument("--profile", default="planetary-computer", choices=sorted(stac.CATALOGS))
    parser.add_argument("--collection", help="a Sentinel-1 collection outside the profiles")
    parser.add_argument("--vv", default="vv", help="asset key of VV (with --collection)")
    parser.add_argument("--vh", default="vh", help="asset key of VH (with --collection)")
    parser.add_argument("--units", default="linear", choices=["dB", "linear"])
    parser.add_argument(
        "--bbox", type=float, nargs=4, required=True, metavar=("WEST", "SOUTH", "EAST", "NORTH")
    )
    parser.add_argument("--datetime", required=True, help="e.g. 2019-09-10/2019-09-20")
    parser.add_argument(
        "--model", default="otsu", help="otsu, otsu-tiled, a registered model or a checkpoint"
    )
    parser.add_argument("--resolution", type=float, default=None, help="metres; default native")
    parser.add_argument("--out", type=Path, default=Path("stac_flood_map"))
    args = parser.parse_args()

    items = stac.search_s1(tuple(args.bbox), args.datetime, catalog=catalog_from(args))
    print(f"found {len(items)} Sentinel-1 items")
    cube = stac.load_s1(items, bbox=tuple(args.bbox), resolution=args.resolution, mosaic=True)
    water = cube.flood.segment(model=args.model, output="mask")  # lazy
    args.out.mkdir(parents=True, exist_ok=True)
    areas = water.flood.area_km2().compute()
    for index, when in enumerate(water["time"].values):
        day = str(when)[:10]
        path = water.isel(time=index).flood.to_cog(args.out / f"water_{day}.tif", overwrite=True)
        print(f"{day}: water {float(areas.isel(time=index)):.2f} km2 -> {path}")
    columns = water.sizes["time"]
    figure, axes = plt.subplots(1, columns, figsize=(4.5 * columns, 4), squeeze=False)
    for index, axis in enumerate(axes[0]):
        scene = water.isel(time=index)
        scene.where(scene != 255).plot.imshow(
            ax=axis, cmap="Blues", vmin=0, vmax=1, add_colorbar=False
        )
        axis.set_title(f"{str(scene['time'].values)[:10]}: {float(areas[index]):.2f} km² water")
        axis.set_aspect("equal")
    figure.tight_layout()
    figure.savefig(args.out / "flood_map.png", dpi=80)
    print(f"wrote {args.out / 'flood_map.png'}")


if __name__ == "__main__":
    main()
