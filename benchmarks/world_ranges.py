"""What scene-level levels the synthetic world draws: percentiles of per-scene medians.

    python benchmarks/world_ranges.py --json [--scenes 300] [--size 192]

For every scene with both water and land (at least 200 px each) of ``--scenes`` scenes of
:func:`floodxr.data.synthetic.paired_scene` (seeds 9 000 000 + k), the median VV and VH of its
water and of its land, and the water-land VH contrast; prints their 0th, 5th, 50th, 95th and
100th percentiles in dB (the ranges the world's docstring quotes) as one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from floodxr.data.synthetic import paired_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    args = parser.parse_args()
    rows = []
    for k in range(args.scenes):
        scene = paired_scene((args.size, args.size), seed=9_000_000 + k)
        vv, vh = scene.image.values[0], scene.image.values[1]
        water = scene.water.values == 1
        if water.sum() > 200 and (~water).sum() > 200:
            rows.append(
                (
                    np.median(vv[water]),
                    np.median(vh[water]),
                    np.median(vv[~water]),
                    np.median(vh[~water]),
                )
            )
    medians = np.array(rows)
    columns = {
        "water_vv_db": medians[:, 0],
        "water_vh_db": medians[:, 1],
        "land_vv_db": medians[:, 2],
        "land_vh_db": medians[:, 3],
        "contrast_vh_db": medians[:, 3] - medians[:, 1],
    }
    result = {
        "scenes": args.scenes,
        "with_water_and_land": len(rows),
        "percentiles": [0, 5, 50, 95, 100],
        **{
            name: [round(float(v), 1) for v in np.percentile(values, [0, 5, 50, 95, 100])]
            for name, values in columns.items()
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
