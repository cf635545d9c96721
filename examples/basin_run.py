"""Map water and flood over river basins for every Sentinel-1 pass, on a local Dask cluster.

    python examples/basin_run.py --basins basins.geojson --datetime 2019-09-01/2019-09-30 \\
        --reference 2019-08-01/2019-08-31 --out valencia

With no ``--basins`` it runs on floodxr's synthetic world instead: it writes the scenes as
COGs with STAC items, serves them with a real STAC API on 127.0.0.1 and maps the two synthetic
basins (one in UTM zone 30, one in zone 31) with the shipped student, using the first pass as
the pre-flood reference. Either way it prints the dask dashboard link and the area table, and
writes ``OUT/basins.zarr``, ``OUT/basins.areas.csv``, ``OUT/areas.png`` (area time series) and
``OUT/last_map.png`` (the last flood map of the first basin).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from floodxr import basin  # noqa: E402
from floodxr.data import stac  # noqa: E402
from floodxr.plot import basin_areas  # noqa: E402


@contextlib.contextmanager
def synthetic_catalog(out: Path) -> Iterator[tuple[stac.Catalog, Path]]:
    """The synthetic world on a loopback STAC API, and its two basins as GeoJSON."""
    from floodxr.data.sen1floods11 import SAMPLE_DIR
    from floodxr.testing.stac import SYNTHETIC_BASINS, StacServer, free_port, write_stac_world

    port = free_port()
    world = write_stac_world(out / "stac-world", data_dir=SAMPLE_DIR,
                             asset_base=f"http://127.0.0.1:{port}/assets")  # fmt: skip
    basins = out / "synthetic_basins.geojson"
    basins.write_text(json.dumps(SYNTHETIC_BASINS))
    with StacServer(world, port=port) as server:
        yield stac.get_catalog("planetary-computer").with_url(server.url), basins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basins", type=Path, help="GeoJSON basins (default: synthetic world)")
    parser.add_argument("--catalog", default="planetary-computer", help="catalog name or URL")
    parser.add_argument("--datetime", default="2019-09-01/2019-09-30")
    parser.add_argument("--reference", help="pre-flood interval (synthetic default: first pass)")
    parser.add_argument("--model", default="student")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("basin_run"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with contextlib.ExitStack() as stack:
        if args.basins is None:
            catalog, basins = stack.enter_context(synthetic_catalog(args.out))
            reference = args.reference or "2019-09-01/2019-09-15"
        else:
            catalog, basins, reference = stac.get_catalog(args.catalog), args.basins, args.reference
        client = basin.start_cluster(args.workers)
        stack.callback(client.cluster.close)
        stack.callback(client.close)
        print(f"dask dashboard: {client.dashboard_link}")
        result = basin.run(basins, datetime=args.datetime, catalog=catalog,
                           store=args.out / "basins.zarr", model=args.model, reference=reference,
                           client=client)  # fmt: skip

    print(result.areas.drop(columns="items").to_string(index=False))
    basin_areas(result.areas).savefig(args.out / "areas.png", dpi=120)
    first = result.areas["basin"].iloc[0]
    ds = basin.open_basin(result.store, first)
    last = ds.isel(time=-1)
    fig, axis = plt.subplots(figsize=(6, 6), layout="constrained")
    x, y = ds["x"].values, ds["y"].values
    shown = last["water"].where(last["water"] != 255)
    axis.imshow(shown, extent=(x[0], x[-1], y[-1], y[0]), cmap="Blues", vmin=0, vmax=1)
    axis.set_title(f"basin {first}: water on {str(last['time'].values)[:16]}")
    axis.set_xlabel(f"x ({ds.rio.crs})")
    axis.set_ylabel(f"y ({ds.rio.crs})")
    fig.savefig(args.out / "last_map.png", dpi=120)
    print(f"wrote {result.store}, {result.table}, {args.out / 'areas.png'} and "
          f"{args.out / 'last_map.png'}")


if __name__ == "__main__":
    main()
