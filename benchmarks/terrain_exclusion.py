"""Radar-shadow false positives on the synthetic world, before and after the exclusion mask.

    python benchmarks/terrain_exclusion.py --json

For the first ``--scenes`` hilly scenes of the synthetic training world (seeds from ``--seed``),
the shipped student (or ``--model``) maps water from Sentinel-1 alone; radar shadow is as dark
as water, so some of it comes out as water. The exclusion mask of each scene's DEM
(``dem.flood.exclusion(orbit_state="ascending", incidence_deg=<the scene's>, hand_max_m=None)``:
shadow and layover only, the world's relief has no drainage network) marks those pixels as
nodata. Prints one JSON line: shadow pixels, false positives in shadow before and after, the
fraction removed, and what the mask costs (true water excluded, all pixels excluded).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="student")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.scenes, args.seed, args.model, args.size)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
