"""A real STAC API on 127.0.0.1 over a STAC world on disk (:mod:`floodxr.testing.stac_world`).

:class:`StacServer` serves a world with `stac-fastapi-static`_ (the STAC API) and Starlette's
range-capable static files (the COGs) from one uvicorn process on loopback, so that
pystac-client and GDAL talk real HTTP to it; :func:`serve_synthetic` writes the synthetic world
once per process and serves it. Install ``floodxr[loopback]`` for the server. The world's
names are re-exported here.

.. _stac-fastapi-static: https://github.com/hadrien-f/stac-fastapi-static
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from floodxr.testing.stac_providers import PROVIDER_SHAPES, write_provider_world
from floodxr.testing.stac_world import (
    CHIP_CLOUD_COVER,
    CLIFF_LON,
    DECOYS,
    PATCHES,
    SYNTHETIC_BASINS,
    SYNTHETIC_BBOX,
    SYNTHETIC_DATES,
    StacWorld,
    iter_items,
    synthetic_elevation,
    synthetic_landcover,
    synthetic_water,
    synthetic_water_km2,
    write_stac_world,
)

__all__ = [
    "CHIP_CLOUD_COVER",
    "CLIFF_LON",
    "synthetic_elevation",
    "synthetic_landcover",
    "PATCHES",
    "PROVIDER_SHAPES",
    "DECOYS",
    "SYNTHETIC_BASINS",
    "SYNTHETIC_BBOX",
    "SYNTHETIC_DATES",
    "StacServer",
    "StacWorld",
    "free_port",
    "iter_items",
    "serve_synthetic",
    "synthetic_water",
    "synthetic_water_km2",
    "write_provider_world",
    "write_stac_world",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Examples
    --------
    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StacServer:
    """A STAC API (stac-fastapi-static) and a COG file server on 127.0.0.1, in a subprocess.

    Use as a context manager; ``url`` is the API root, ``assets_url`` the COG root.

    Examples
    --------
    >>> import tempfile, pystac_client
    >>> from floodxr.data.sen1floods11 import SAMPLE_DIR
    >>> port = free_port()
    >>> world = write_stac_world(tempfile.mkdtemp(), data_dir=SAMPLE_DIR,
    ...                          asset_base=f"http://127.0.0.1:{port}/assets")
    >>> with StacServer(world, port=port) as server:
    ...     client = pystac_client.Client.open(server.url)
    ...     sorted(c.id for c in client.get_collections())
    ['cop-dem-glo-30', 'esa-worldcover', 'jrc-gsw', 'sen1floods11-s1', 'sen1floods11-s2',
     'sentinel-1-rtc', 'sentinel-2-l2a']
    """

    def __init__(self, world: StacWorld, *, port: int | None = None, timeout: float = 60) -> None:
        self.world = world
        self.port = port or free_port()
        self.timeout = timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.assets_url = f"{self.url}/assets"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StacServer:
        # run by path: importing the floodxr package would add a second to every start
        command = [
            sys.executable,
            str(Path(__file__).with_name("_server.py")),
            "--catalog",
            str(self.world.catalog.resolve()),
            "--assets",
            str(self.world.assets.resolve()),
            "--port",
            str(self.port),
        ]
        self._process = subprocess.Popen(command, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=5):
                    return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(
                        f"the loopback STAC server on port {self.port} did not start "
                        f"(exit code {self._process.returncode}); is floodxr[loopback] installed?"
                    ) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


_SHARED: dict[str, Any] = {}


@contextlib.contextmanager
def serve_synthetic(root: str | Path | None = None) -> Iterator[tuple[Any, Path]]:
    """The test world on a loopback STAC API, for examples: yields ``(catalog, basins)``.

    ``catalog`` is the Planetary Computer profile at the server's URL (its collections are
    shaped like the Planetary Computer's); ``basins`` a GeoJSON file of
    :data:`SYNTHETIC_BASINS`. With ``root``, the world is written there and the server stops
    when the block ends; without, one world and server in a temporary folder serve every call
    of the process and stop when it exits (doctests and notebooks start it once).

    Examples
    --------
    >>> from floodxr.data import stac
    >>> with serve_synthetic() as (catalog, basins):
    ...     items = stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> len(items), basins.name
    (4, 'synthetic_basins.geojson')
    """
    if root is None:
        if "served" not in _SHARED:
            stack = contextlib.ExitStack()
            # the folder goes with the server when the process exits (31 MB per process)
            temporary = stack.enter_context(tempfile.TemporaryDirectory(prefix="floodxr-world-"))
            _SHARED["served"] = stack.enter_context(serve_synthetic(temporary))
            atexit.register(stack.close)
        yield _SHARED["served"]
        return
    from floodxr.data import stac
    from floodxr.data.sen1floods11 import SAMPLE_DIR

    folder = Path(root)
    port = free_port()
    world = write_stac_world(
        folder / "stac-world", data_dir=SAMPLE_DIR, asset_base=f"http://127.0.0.1:{port}/assets"
    )
    basins = folder / "synthetic_basins.geojson"
    basins.write_text(json.dumps(SYNTHETIC_BASINS))
    with StacServer(world, port=port) as server:
        yield stac.get_catalog("planetary-computer").with_url(server.url), basins
