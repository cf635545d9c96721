"""Throughput of ``.flood.segment(...).compute()`` against the limit: the network on each px once.

    python benchmarks/segment_throughput.py --json                  # the shipped student
    python benchmarks/segment_throughput.py --encoder resnet18 --json  # an untrained network

Prints one JSON line. For the default engine (``engine="auto"``) and for each engine (torch,
ONNX Runtime float32, ONNX Runtime int8; an ``--encoder`` network, which has no int8 model, is
quantised for the run on crops of the scene):

* ``pipeline_px_s``: scene pixels per second of the whole lazy pipeline at the default settings
  (generating the synthetic input, normalisation, halo or windows, dask scheduling), on a
  ``--side`` px scene in ``--chunk`` px dask chunks;
* ``limit_px_s``: the network alone over the same scene pixels **exactly once**, in plain
  non-overlapping tiles from an in-memory normalised array (no halo, no blending, no dask), at
  its best tile size and thread layout (2 threads x 1 intra-op thread, or 1 x 2);
* ``efficiency`` = pipeline / limit, and ``scene_425mpx_s``: seconds for a 425 Mpx Sentinel-1 IW
  scene at the pipeline's speed;
* ``ceiling``: the efficiency of a perfect pipeline that makes its input (``input_px_s``, the
  lazy scene computed alone on the same threads) and runs the network over each pixel once with
  no other cost: ``1 / (1 + limit / input)``. The pipeline's input is part of its time and not of
  the limit's, so no pipeline gets above it.

``--cluster N`` also runs the default engine's pipeline on a ``dask.distributed`` LocalCluster of
N worker processes (``floodxr.basin.start_cluster``: one thread each, the worker environment of
basin runs) and reports it against the same limit (``cluster``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

import floodxr  # noqa: F401  registers the .flood accessor
from floodxr import models
from floodxr.models.checkpoint import paths as checkpoint_paths
from floodxr.models.onnx import int8_path, load_session, quantize
from floodxr.segment import _engine

from _common import checkpoint, scene

IW_SCENE_PX = 425e6
ENGINES = ("torch", "onnx", "onnx-int8")


def limit_px_s(weights: Path, engine: str, image: np.ndarray, tile: int, workers: int) -> float:
    """Scene px/s of the bare network on non-overlapping ``tile`` px tiles of ``image``, in
    ``workers`` threads that share the cores' intra-op threads."""
    side = image.shape[-1]
    starts = [(y, x) for y in range(0, side, tile) for x in range(0, side, tile)]
    per_worker = max(1, (os.cpu_count() or 1) // workers)

    def load() -> Any:
        if engine.startswith("onnx"):
            return load_session(weights, threads=per_worker, int8=engine == "onnx-int8")
        torch.set_num_threads(per_worker)  # in this thread: OpenMP's setting is per thread
        return models.load(weights)

    def run(share: list[tuple[int, int]]) -> None:
        network = load()
        network.water_probability(image[None, :, :tile, :tile])  # warm, before the clock
        barrier.wait()
        for y, x in share:
            network.water_probability(image[None, :, y : y + tile, x : x + tile])

    barrier = threading.Barrier(workers + 1)
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run, starts[k::workers]) for k in range(workers)]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
    return side * side / (time.perf_counter() - start)


def on_cluster(workers: int, cube: Any, weights: Path, default: dict[str, Any]) -> dict[str, Any]:
    """The default pipeline on ``floodxr.basin.start_cluster(workers)`` (worker processes, one
    thread each, the environment basin runs get), against the same limit."""
    from floodxr.basin import start_cluster

    side = cube.sizes["x"]
    client = start_cluster(workers)
    try:
        cube.flood.segment(model=str(weights)).compute()  # workers load the network: untimed
        start = time.perf_counter()
        cube.flood.segment(model=str(weights)).compute()
        pipeline = side * side / (time.perf_counter() - start)
    finally:
        client.close()
        client.cluster.close()
    return {
        "workers": workers,
        "pipeline_px_s": round(pipeline),
        "efficiency": round(pipeline / default["limit_px_s"], 3),
        "scene_425mpx_s": round(IW_SCENE_PX / pipeline, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="student", help="registered name or checkpoint")
    parser.add_argument("--encoder", help="an untrained network with this encoder instead")
    parser.add_argument("--architecture", default="deeplabv3plus-s2-compact")
    parser.add_argument("--decoder-channels", type=int, default=32)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument(
        "--tiles",
        type=int,
        nargs="+",
        default=[512, 1024, 2048],
        help="tile sizes tried for the limit (its best counts)",
    )
    parser.add_argument("--cluster", type=int, default=0, help="also on N worker processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.encoder:
        weights = checkpoint(args.encoder, args.decoder_channels, args.architecture)
    else:
        weights = models.resolve(args.model)
    config = models.read_config(weights)
    cube = scene(args.side, args.chunk)
    low = np.array([config.normalization[b][0] for b in config.bands], "f4")[:, None, None]
    high = np.array([config.normalization[b][1] for b in config.bands], "f4")[:, None, None]
    image = np.nan_to_num(np.clip((cube.values - low) / (high - low), 0, 1)).astype("f4")
    result: dict[str, Any] = {
        "model": str(args.encoder or args.model),
        "encoder": config.encoder,
        "architecture": config.architecture,
        "context_px": config.context,
        "side": args.side,
        "chunk": args.chunk,
        "default_engine": _engine("auto", weights, "cpu"),
    }
    cube.compute()  # warm
    start = time.perf_counter()
    cube.compute()
    result["input_px_s"] = round(args.side**2 / (time.perf_counter() - start))
    if not int8_path(weights).is_file():
        # no int8 model beside it (an untrained network, or a model that ships without one):
        # quantise a copy, calibrated on the scene, never writing beside the model itself
        copy = Path(tempfile.mkdtemp()) / "bench"
        for path in checkpoint_paths(weights):
            shutil.copyfile(path, copy.with_suffix(path.suffix))
        weights = copy.with_suffix(".safetensors")
        half = args.side // 2
        crops = [image[None, :, y : y + 256, x : x + 256] for y in (0, half) for x in (0, half)]
        quantize(weights, crops)
    for engine in ENGINES:
        # untimed warm-up: sessions (one per thread layout) made, ONNX exported and cached
        cube.flood.segment(model=str(weights), engine=engine).compute()
        start = time.perf_counter()
        cube.flood.segment(model=str(weights), engine=engine).compute()
        pipeline = args.side**2 / (time.perf_counter() - start)
        limits = {
            (tile, workers): limit_px_s(weights, engine, image, tile, workers)
            for tile in args.tiles
            for workers in (1, 2)
        }
        (tile, workers), limit = max(limits.items(), key=lambda kv: kv[1])
        result[engine] = {
            "pipeline_px_s": round(pipeline),
            "limit_px_s": round(limit),
            "efficiency": round(pipeline / limit, 3),
            "ceiling": round(1 / (1 + limit / result["input_px_s"]), 3),
            "scene_425mpx_s": round(IW_SCENE_PX / pipeline, 1),
            "limit_tile": tile,
            "limit_layout": f"{workers} x {max(1, (os.cpu_count() or 1) // workers)} threads",
        }
    result["default"] = result[result["default_engine"]]
    if args.cluster:
        result["cluster"] = on_cluster(args.cluster, cube, weights, result["default"])
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
