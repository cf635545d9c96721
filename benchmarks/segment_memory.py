"""Peak memory of segmenting a lazily generated N x N scene straight into a Zarr store.

    python benchmarks/segment_memory.py --side 8192 16384 --json          # the shipped student
    python benchmarks/segment_memory.py --encoder resnet18 --json          # an untrained network

The default settings (``engine="auto"``), the shipped student unless ``--encoder`` asks for an
untrained network of that encoder (``--architecture``, ``--decoder-channels``). Each side runs
in a fresh process (peak RSS is per process) and prints one JSON line: ``{"side",
"peak_rss_mib", "seconds", ...}``. The scene is generated chunk by chunk inside the graph, so
nothing but the pipeline's own working set is ever resident.
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


def measure(
    side: int,
    model: str,
    encoder: str | None,
    architecture: str,
    decoder_channels: int,
    chunk: int,
    engine: str,
) -> dict:
    import floodxr
    from floodxr import models

    from _common import checkpoint, scene

    if encoder:
        weights = checkpoint(encoder, decoder_channels, architecture)
    else:
        weights = models.resolve(model)
    store = Path(tempfile.mkdtemp()) / "water.zarr"
    start = time.perf_counter()
    mask = scene(side, chunk).flood.segment(model=str(weights), output="mask", engine=engine)
    floodxr.writers.to_zarr(mask, store)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    config = models.read_config(weights)
    return {
        "side": side,
        "model": encoder or model,
        "encoder": config.encoder,
        "architecture": config.architecture,
        "decoder_channels": config.decoder_channels,
        "chunk": chunk,
        "engine": engine,
        "peak_rss_mib": round(peak_kib / 1024),
        "seconds": round(seconds, 1),
        "px_s": round(side * side / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--model", default="student", help="registered name or checkpoint")
    parser.add_argument("--encoder", help="an untrained network with this encoder instead")
    parser.add_argument("--architecture", default="deeplabv3plus-s2-compact")
    parser.add_argument("--decoder-channels", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--engine", choices=("auto", "torch", "onnx", "onnx-int8"), default="auto")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                measure(
                    args.side[0],
                    args.model,
                    args.encoder,
                    args.architecture,
                    args.decoder_channels,
                    args.chunk,
                    args.engine,
                )
            )
        )
        return
    for side in args.side:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--side",
                str(side),
                "--model",
                args.model,
                *(["--encoder", args.encoder] if args.encoder else []),
                "--architecture",
                args.architecture,
                "--decoder-channels",
                str(args.decoder_channels),
                "--chunk",
                str(args.chunk),
                "--engine",
                args.engine,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
