"""The docs site: built with Sphinx (warnings are errors) running the example notebooks, then
opened in headless Chromium to see that pages render their headings and maps."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
NOTEBOOKS = ("historical_flood", "train_teacher_student", "basin_run")
# what the probe of this machine kind found necessary: no sandbox as root, no GPU, and no
# background connections (the network is closed)
# building the site executes the notebooks (about 3 minutes alone on 2 cores); beside another
# CPU-heavy process it took over 10, which the suite's default timeout of 600 s cut short
pytestmark = pytest.mark.timeout(3600)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # oneDNN picks its kernels by the CPU's instruction set (AVX-512 here, AVX2 elsewhere) and
    # training results differ with them from the first steps; AVX2 exists on every x86-64 CI
    # machine, so pinning it keeps the executed notebooks' numbers the same across them
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX2")}
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3000,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    return out


def test_the_docs_build_without_warnings_and_run_the_notebooks(site):
    for page in (
        "index",
        "getting-started",
        "concepts",
        "stac",
        "mapping",
        "terrain",
        "segmentation",
        "baselines",
        "training",
        "basin",
        "api",
        "reliability",
        "model-card",
        "results",
        "benchmarks",
        "architecture",
        "comparison",
    ):
        assert (site / f"{page}.html").is_file(), page
    # the API reference has the accessor and the modules' functions with their examples
    accessor = (site / "generated" / "xarray.DataArray.flood.segment.html").read_text()
    assert "DataArray.flood.segment" in accessor
    basin = (site / "generated" / "floodxr.basin.html").read_text()
    assert 'id="floodxr.basin.run"' in basin and "serve_synthetic" in basin
    for name in NOTEBOOKS:
        html = (site / "examples" / f"{name}.html").read_text()
        figures = re.findall(r'<img[^>]+src="([^"]+\.png)"', html)
        assert figures, f"{name}: no figure in the executed notebook"
        for figure in figures:
            assert (site / "examples" / figure).read_bytes()[:4] == b"\x89PNG"
    # executed, with their outputs: the dask dashboard link and the tables
    assert "dask dashboard: http://127.0.0.1:" in (site / "examples" / "basin_run.html").read_text()
    assert "student_km2" in (site / "examples" / "historical_flood.html").read_text()
    # a regression check that each stage of the small training run learns the water, with
    # floors well below the scores it gives (teacher 0.62, student 0.51, weak 0.55 on the
    # machine that wrote this, in issue 23's wider world) and above what a stage that calls
    # everything water scores on these test scenes (0.28): noise across CPUs moves them by a few
    # hundredths, a broken stage by far more. Which method is better is measured over seeds by
    # benchmarks/distillation_claim.py, not here: one run cannot show it.
    trained = (site / "examples" / "train_teacher_student.html").read_text()
    scores = dict(re.findall(r"test water IoU of the ([^:]+): ([\d.]+)", trained))
    floors = {
        "teacher (S1 + S2)": 0.45,
        "student (S1, distilled)": 0.35,
        "weak-label baseline (S1)": 0.35,
    }
    assert set(scores) == set(floors), scores
    for name, floor in floors.items():
        assert floor < float(scores[name]) <= 1, (name, scores)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(page: Path, out: Path) -> tuple[str, np.ndarray]:
    """The DOM after load, and a screenshot (RGB floats in [0, 1]) of the page."""
    import matplotlib.image

    url = page.as_uri()
    common = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={out / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    shot = out / f"{page.stem}.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,6000", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom, matplotlib.image.imread(shot)[..., :3]


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        ("index.html", "floodxr"),
        (
            "examples/historical_flood.html",
            "A historical flood from a STAC API: student and Otsu maps, flooded area over time",
        ),
    ],
)
def test_pages_render_their_headings_and_maps_in_chromium(site, tmp_path, page, heading):
    dom, pixels = render(site / page, tmp_path)
    headings = [
        re.sub(r"<[^>]+>|¶", "", h).strip()
        for h in re.findall(r"<h1[^>]*>(.*?)</h1>", dom, flags=re.S)
    ]
    assert heading in headings, headings
    assert len(re.findall(r"<img[^>]+\.png", dom)) >= 1
    # not a blank page: text and figures cover part of it, and a water map's blue shows
    ink = (pixels.sum(axis=-1) < 2.7).mean()
    blue = ((pixels[..., 2] > 0.6) & (pixels[..., 0] < 0.35) & (pixels[..., 1] < 0.55)).mean()
    assert ink > 0.02, f"{page}: {ink:.3f} of the screenshot is not white"
    assert blue > 0.002, f"{page}: no water-blue pixels ({blue:.4f})"


def test_the_historical_notebook_ends_with_a_map_that_renders_its_layers(site, tmp_path):
    """The folium map the notebook ends with, opened on its own in Chromium (offline: Leaflet
    is embedded), draws its flood polygons and its probability raster."""
    import html

    page = (site / "examples" / "historical_flood.html").read_text()
    frames = re.findall(r'<iframe srcdoc="([^"]*)"', page)
    assert frames, "no interactive map in the notebook's page"
    standalone = tmp_path / "map.html"
    standalone.write_text(html.unescape(frames[-1]))
    common = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", standalone.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert re.search(r'<div class="[^"]*leaflet-container', dom), dom[-2000:]
    assert re.search(r'<path class="leaflet-interactive"[^>]*d="M', dom)
    assert re.search(r'<img[^>]*class="leaflet-image-layer', dom)
    assert "likelihood" in dom and "flood" in dom  # the layer control names both
