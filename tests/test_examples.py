import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_threshold_chip_example_runs_on_the_bundled_chip(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "threshold_chip.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Spain_7370579 otsu: IoU" in done.stdout
    assert (tmp_path / "threshold_chip.png").read_bytes()[:4] == b"\x89PNG"


def test_stac_flood_map_example_against_the_loopback_server(loopback, tmp_path):
    """The flood grows between the two synthetic passes; the maps land as COGs on one grid."""
    import re

    import rasterio

    from floodxr.testing.stac import SYNTHETIC_BBOX

    command = [
        sys.executable,
        str(EXAMPLES / "stac_flood_map.py"),
        "--stac",
        loopback.url,
        "--bbox",
        *map(str, SYNTHETIC_BBOX),
        "--datetime",
        "2019-09-01/2019-09-30",
        "--out",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    areas = [float(a) for a in re.findall(r"water ([\d.]+) km2", done.stdout)]
    assert len(areas) == 2 and areas[1] > areas[0] > 1.0, done.stdout
    for day in ("2019-09-13", "2019-09-25"):
        with rasterio.open(tmp_path / "out" / f"water_{day}.tif") as src:
            assert src.crs.to_epsg() == 32631 and src.nodata == 255
    assert (tmp_path / "out" / "flood_map.png").read_bytes()[:4] == b"\x89PNG"
