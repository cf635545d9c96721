"""Does a short training run give the same weights? Per torch thread count, on this CPU.

    python benchmarks/training_determinism.py --threads 2 2 1 --json
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/training_determinism.py --threads 2 --json

Trains the training notebook's teacher setting for 10 steps once per entry of ``--threads`` and
prints one JSON line: per run the thread count, oneDNN's CPU capability, a hash of the final
weights and the valid IoU. Equal hashes for equal settings show the run is deterministic on one
machine; other thread counts or another instruction set (``ONEDNN_MAX_CPU_ISA``) give others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile


def run(threads: int, steps: int) -> dict:
    import torch
    from safetensors.torch import load_file

    from floodxr import train

    config = train.CPU.replace(
        encoder="tu-lcnet_100",
        decoder_channels=32,
        crop=96,
        batch_size=8,
        steps=steps,
        eval_every=steps,
        checkpoint_every=steps,
        threads=threads,
    )
    labelled = train.synthetic_source(4, seed=11, size=128)
    valid = train.synthetic_source(2, seed=13, size=128)
    result = train.teacher(
        labelled, valid=valid, out=tempfile.mkdtemp(), config=config, progress=False
    )
    weights = load_file(str(result.runs[0].last))
    digest = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights)))
    return {
        "threads": threads,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
        "weights_sha256": digest.hexdigest()[:16],
        "valid_iou": round(result.best_iou, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 2, 1])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    runs = [run(threads, args.steps) for threads in args.threads]
    print(json.dumps({"steps": args.steps, "runs": runs}) if args.json else runs)


if __name__ == "__main__":
    main()
