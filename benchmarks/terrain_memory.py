"""Peak memory and time of a pass's exclusion flags (DEM: shadow, layover, HAND) at basin scale.

    python benchmarks/terrain_memory.py --side 8192 16384 --json

For each side N, a synthetic 30 m DEM GeoTIFF covering an N x N pass at 10 m (rolling hills
with valleys, 0-600 m) is written once, then, in a fresh process (peak RSS is per process),
:func:`floodxr.ancillary.exclusion` reads it as a local file and computes the flags tile by tile
(:data:`floodxr.ancillary.TERRAIN_TILE` px tiles with :data:`floodxr.terrain.HAND_OVERLAP` px
of DEM around each) and reduces them to counts: what ``floodxr map`` and basin runs do before
writing. One JSON line per side: ``{"side", "dem_px", "peak_rss_mib", "seconds",
"excluded_share"}``. Memory should stay flat as N grows: no step holds the whole DEM.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORIGIN = (300_000.0, 4_500_000.0)  # UTM zone 31N, on the terrain lattice


def write_dem(path: Path, side: int) -> None:
    """A 30 m DEM of rolling hills cut by valleys over an ``side`` x ``side`` 10 m pass."""
    import numpy as np
    import rasterio
    from affine import Affine
    from scipy import ndimage

    n = side // 3 + 1
    rng = np.random.default_rng(0)
    z = np.zeros((n, n), "float32")
    for sigma, height in ((200, 400.0), (50, 120.0), (12, 30.0)):
        field = ndimage.gaussian_filter(rng.standard_normal((n, n)).astype("float32"), sigma)
        z += height * field / (np.abs(field).max() + 1e-9)
    z -= z.min()
    profile = {
        "driver": "GTiff",
        "height": n,
        "width": n,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32631",
        "transform": Affine(30.0, 0, ORIGIN[0], 0, -30.0, ORIGIN[1]),
        "nodata": -32767.0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)


def measure(side: int, dem: Path) -> dict:
    import dask

    from floodxr import ancillary
    from floodxr.grid import north_up, template

    like = template(north_up((side, side), ORIGIN, 10.0, "EPSG:32631"), 2048)
    source = ancillary.Source("dem", path=str(dem))
    start = time.perf_counter()
    flags = ancillary.exclusion(
        like, dem=source, landcover=None, orbit_state="descending", catalog=None
    )
    excluded = (flags != 0).sum()
    with dask.config.set(scheduler="threads", num_workers=2):
        count = int(excluded.compute())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "side": side,
        "dem_px": int((side // 3 + 1) ** 2),
        "peak_rss_mib": round(peak, 1),
        "seconds": round(seconds, 1),
        "excluded_share": round(count / side**2, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "DEM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), Path(args.child[1]))))
        return
    with tempfile.TemporaryDirectory() as folder:
        for side in args.side:
            dem = Path(folder) / f"dem-{side}.tif"
            write_dem(dem, side)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(side), str(dem)],
                capture_output=True,
                text=True,
                check=True,
            )
            line = done.stdout.strip().splitlines()[-1]
            print(line if args.json else json.dumps(json.loads(line), indent=1))


if __name__ == "__main__":
    main()
