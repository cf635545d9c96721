"""Throughput of ``.flood.segment(...).compute()`` against the bare network on the same windows.

    python benchmarks/segment_throughput.py --encoder tu-mobilenetv3_large_100 --json

Prints one JSON line. ``pipeline_px_s``: scene pixels per second of the whole lazy pipeline
(generation of the synthetic input, normalisation, windows, blending, dask scheduling).
``bare_px_s``: scene pixels per second of the network alone on exactly the windows the pipeline
ran (seam windows counted as often as the pipeline ran them), batched alike, from an in-memory
normalised array, laid out like the pipeline (one thread per core with its own network and one
torch thread; plain torch with 2 intra-op threads was half as fast here). ``ratio`` =
pipeline / bare: what loading, normalising, blending and scheduling cost. The same is
measured with ``engine="onnx"`` and ``onnx_speedup`` = onnx pipeline / torch pipeline.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

import floodxr
from floodxr import models
from floodxr.models.onnx import load_session
from floodxr.preprocess import normalize
from floodxr.segment import DEFAULT_TILE, _Plan

from _common import checkpoint, scene


def pipeline_windows(plan: _Plan, side: int, chunk: int) -> list[tuple[int, int]]:
    """Global window starts the pipeline runs, once per chunk that needs them."""
    given = [chunk] * (side // chunk) + ([side % chunk] if side % chunk else [])
    bounds = np.cumsum((0, *plan.aligned_chunks(tuple(given)))).tolist()
    per_axis = [plan.starts_touching(side, a, b - a) for a, b in itertools.pairwise(bounds)]
    return [(y, x) for ys in per_axis for xs in per_axis for y in ys for x in xs]


def bare_seconds(load, image: np.ndarray, windows, plan: _Plan, batch_size: int) -> float:
    """The network alone, laid out like the pipeline: one thread per core, 1 torch thread each."""
    padded = np.pad(image, ((0, 0), (0, plan.step), (0, plan.step)), mode="symmetric")
    cores = os.cpu_count() or 1
    shares = [windows[k::cores] for k in range(cores)]

    def run(share: list[tuple[int, int]]) -> None:
        torch.set_num_threads(1)  # in this thread: OpenMP's setting is per thread
        network = load()  # per thread, as in the pipeline (and loaded before the clock starts)
        network.water_probability(np.zeros((1, padded.shape[0], plan.window, plan.window), "f4"))
        barrier.wait()
        for first in range(0, len(share), batch_size):
            batch = np.stack([padded[:, y : y + plan.window, x : x + plan.window]
                              for y, x in share[first : first + batch_size]])  # fmt: skip
            network.water_probability(batch)

    barrier = threading.Barrier(cores + 1)
    with ThreadPoolExecutor(cores) as pool:
        futures = [pool.submit(run, share) for share in shares]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="tu-mobilenetv3_large_100")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    weights = checkpoint(args.encoder, args.decoder_channels)
    cube = scene(args.side, args.chunk)
    options = floodxr.get_options()
    plan = _Plan.for_scene(args.side, args.side, options["tile"] or DEFAULT_TILE, options["halo"])
    windows = pipeline_windows(plan, args.side, args.chunk)
    image = normalize(cube).values
    result: dict[str, object] = {
        "encoder": args.encoder, "decoder_channels": args.decoder_channels, "side": args.side,
        "chunk": args.chunk, "tile": plan.window, "halo": plan.halo, "windows": len(windows),
        "window_px_per_scene_px": round(len(windows) * plan.window**2 / args.side**2, 3),
    }  # fmt: skip
    for engine in ("torch", "onnx"):
        floodxr.segment.segment(
            cube.isel(y=slice(0, 1024), x=slice(0, 1024)), model=str(weights), engine=engine
        ).compute()  # warm-up: load the network per thread
        start = time.perf_counter()
        cube.flood.segment(model=str(weights), engine=engine).compute()
        pipeline = args.side**2 / (time.perf_counter() - start)
        torch.set_num_threads(1)

        def load(engine=engine):
            return models.load(weights) if engine == "torch" else load_session(weights, threads=1)

        bare = args.side**2 / bare_seconds(load, image, windows, plan, options["batch_size"])
        prefix = "" if engine == "torch" else "onnx_"
        result |= {f"{prefix}pipeline_px_s": round(pipeline), f"{prefix}bare_px_s": round(bare),
                   f"{prefix}ratio": round(pipeline / bare, 3)}  # fmt: skip
    result["onnx_speedup"] = round(result["onnx_pipeline_px_s"] / result["pipeline_px_s"], 2)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
