"""Sphinx configuration of the floodxr docs: ``make docs`` builds them into docs/_build/html."""

from __future__ import annotations

import importlib.resources
import os
import shutil
from pathlib import Path

import sphinx_autosummary_accessors

import floodxr

HERE = Path(__file__).parent
# the notebooks' interactive maps embed Leaflet from the docs' own dependency (no CDN offline)
os.environ.setdefault(
    "FLOODXR_LEAFLET",
    str(importlib.resources.files("js_lib_leaflet") / "static" / "js_lib_leaflet"),
)
project = "floodxr"
author = "floodxr developers"
copyright = "2026, floodxr developers"  # noqa: A001  Sphinx's name
release = version = floodxr.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autosummary_accessors",
    "myst_nb",
]
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
# the docstrings' own "See Also"/types name things Sphinx cannot resolve offline: no nitpicking
nitpicky = False
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
# the notebooks in examples/ run during the build: the maps in the docs are always today's
nb_execution_mode = "force"
# per cell: the training cell takes ~2.5 min alone on 2 cores, over 15 beside a CPU-heavy process
nb_execution_timeout = 3000
nb_execution_raise_on_error = True
nb_execution_in_temp = True
nb_output_stderr = "remove"
nb_merge_streams = True
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "alabaster"
html_title = "floodxr"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Flood extent from Sentinel-1 radar on xarray and Dask",
    "page_width": "1100px",
    "sidebar_width": "240px",
}


def _copy_notebooks() -> None:
    """The example notebooks live in examples/ (where users find them); Sphinx reads its own
    folder, so they are copied into docs/examples/ (ignored by git) before each build."""
    target = HERE / "examples"
    target.mkdir(exist_ok=True)
    for notebook in sorted((HERE.parent / "examples").glob("*.ipynb")):
        shutil.copyfile(notebook, target / notebook.name)


_copy_notebooks()


def _make_figures() -> None:
    """The landing page's map, drawn now by the shipped student on the bundled real chip."""
    import matplotlib

    matplotlib.use("Agg")
    from floodxr.data import sen1floods11

    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    chip = sen1floods11.open_chip(sen1floods11.SAMPLE_DIR, "Spain_7370579")
    axis = chip.s1.flood.plot(
        chip.s1.flood.segment(model="student"),
        title="Spain_7370579 (Sen1Floods11, 2019-09-18): student",
    )
    axis.figure.savefig(out / "demo_map.png", dpi=90)


_make_figures()
