"""Threshold one Sen1Floods11 chip with global and tiled Otsu, score both, save a figure.

    python examples/threshold_chip.py [DATA_DIR CHIP_ID OUT.png]

Without arguments it uses the real chip bundled with floodxr.
"""

import sys

import floodxr  # noqa: F401  registers the .flood accessor
from floodxr.data import sen1floods11 as s11
from floodxr.plot import side_by_side


def main(root: str, chip_id: str, out: str) -> None:
    chip = s11.open_chip(root, chip_id, chunks=256)  # lazy: nothing is read yet
    masks = {"otsu": chip.s1.flood.otsu(), "otsu_tiled": chip.s1.flood.otsu_tiled()}
    for name, mask in masks.items():
        score = mask.flood.confusion(chip.label)
        area = float(mask.flood.area_km2())
        print(f"{chip_id} {name}: IoU {score.iou:.3f}, water {area:.2f} km2")
    figure = side_by_side(chip.s1, chip.s1.flood.otsu_tiled().compute(), label=chip.label)
    figure.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[1:] or [str(s11.SAMPLE_DIR), s11.SAMPLE_CHIP, "threshold_chip.png"]
    main(*args)
