"""Wall time and peak worker memory of a basin run on 1 and 2 LocalCluster workers.

    python benchmarks/basin_scaling.py --json [--resolution 10 5] [--model student]

The basin set is floodxr's synthetic world served by a real STAC API on 127.0.0.1: two basins
in UTM zones 30 and 31, two passes of two frames each, the first pass as the flood reference
(6 units: 2 reference + 4 maps). Each cluster first maps the set once into a scratch store
(workers import torch and receive the model), then the timed run maps it into a new store.
Peak memory is the largest resident set of any worker process, sampled every 50 ms. A finer
``--resolution`` grows every basin (5 m: 4x the pixels of 10 m) to show whether memory per
worker grows with it; ``--nanny-defaults`` runs the workers without :data:`floodxr.basin.
WORKER_ENVIRON`, to see what it buys. Prints one JSON line per (workers, resolution) and one
with the speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path


class PeakRss:
    """Largest RSS of the given processes while the block runs (a polling thread)."""

    def __init__(self, pids: list[int], every: float = 0.05) -> None:
        import psutil

        self.processes = [psutil.Process(pid) for pid in pids]
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            for process in self.processes:
                try:
                    self.peak = max(self.peak, process.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(
    workers: int, resolution: float, catalog, basins: Path, model: str, work: Path, environ: bool
) -> dict:
    from floodxr import basin

    client = basin.start_cluster(workers, environ=basin.WORKER_ENVIRON if environ else None)
    try:
        common = {
            "datetime": "2019-09-01/2019-09-30",
            "catalog": catalog,
            "model": model,
            "resolution": resolution,
            "reference_dates": "2019-09-01/2019-09-15",
            "client": client,
            "progress": False,
        }
        basin.run(basins, store=work / f"warm-{workers}-{resolution}.zarr", **common)
        pids = list(client.run(os.getpid).values())
        with PeakRss(pids) as peak:
            start = time.perf_counter()
            result = basin.run(basins, store=work / f"timed-{workers}-{resolution}.zarr", **common)
            seconds = time.perf_counter() - start
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    grids = json.loads((result.store / "manifest.json").read_text())["basins"].values()
    pixels = sum(v["grid"]["ny"] * v["grid"]["nx"] for v in grids)
    units = len(result.computed) + 2
    # every unit maps one basin on one pass: the pixels segmented, per second of the whole run
    # (STAC search, reading the rasters, the network, the Zarr writes)
    segmented = pixels / len(grids) * units
    return {
        "workers": workers,
        "resolution_m": resolution,
        "worker_environ": environ,
        "units": units,
        "basin_pixels": pixels,
        "seconds": round(seconds, 2),
        "segmented_px_s": round(segmented / seconds),
        "peak_worker_rss_mib": round(peak.peak / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, nargs="+", default=[10.0])
    parser.add_argument("--model", default="student")
    parser.add_argument(
        "--nanny-defaults",
        action="store_true",
        help="start workers with distributed's own environment (malloc trim "
        "threshold 64 KiB, OpenMP threads unset) instead of WORKER_ENVIRON",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()

    from floodxr.data import stac
    from floodxr.data.sen1floods11 import SAMPLE_DIR
    from floodxr.testing.stac import SYNTHETIC_BASINS, StacServer, free_port, write_stac_world

    work = Path(tempfile.mkdtemp(prefix="basin-bench-"))
    port = free_port()
    world = write_stac_world(
        work / "world", data_dir=SAMPLE_DIR, asset_base=f"http://127.0.0.1:{port}/assets"
    )
    basins = work / "basins.geojson"
    basins.write_text(json.dumps(SYNTHETIC_BASINS))
    rows = []
    with StacServer(world, port=port) as server:
        catalog = stac.get_catalog("planetary-computer").with_url(server.url)
        for resolution in args.resolution:
            for workers in (1, 2):
                row = measure(
                    workers,
                    resolution,
                    catalog,
                    basins,
                    args.model,
                    work,
                    environ=not args.nanny_defaults,
                )
                rows.append(row)
                print(json.dumps(row) if args.json else row, flush=True)
    speedups = {
        str(r): round(
            next(x["seconds"] for x in rows if x["workers"] == 1 and x["resolution_m"] == r)
            / next(x["seconds"] for x in rows if x["workers"] == 2 and x["resolution_m"] == r),
            2,
        )
        for r in args.resolution
    }
    summary = {"speedup_2_vs_1_workers": speedups, "cores": os.cpu_count()}
    print(json.dumps(summary) if args.json else summary)


if __name__ == "__main__":
    main()
