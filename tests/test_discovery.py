"""Any STAC API: collections described by their own metadata, and Planetary Computer signing.

Every catalogue here is served on 127.0.0.1 at an address floodxr has no profile for; the
provider shapes publish the same synthetic COGs as the Planetary-Computer-shaped world, so a
cube read through any of them must equal the reference cube.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pystac
import pytest
from test_stac import STORED, pc_catalog

from floodxr.data import discovery, stac
from floodxr.errors import InvalidOptionError, UnitsError
from floodxr.testing.stac import (
    SYNTHETIC_BBOX,
    StacServer,
    free_port,
    write_provider_world,
    write_stac_world,
)

DATES = "2019-09"


@pytest.fixture(scope="module")
def providers(loopback, tmp_path_factory):
    """One STAC API per provider shape over the loopback world's synthetic COGs."""
    servers = {}
    try:
        for shape in ("earth-search", "copernicus", "custom", "ambiguous"):
            world = write_provider_world(tmp_path_factory.mktemp(shape), loopback.world, shape)
            servers[shape] = StacServer(world).__enter__()
        yield {shape: server.url for shape, server in servers.items()}
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def reference(loopback):
    """The cubes read with floodxr's Planetary Computer profile."""
    catalog = pc_catalog(loopback.url)
    s1 = stac.load_s1(stac.search_s1(SYNTHETIC_BBOX, DATES, catalog=catalog), mosaic=True)
    s2 = stac.load_s2(stac.search_s2(SYNTHETIC_BBOX, DATES, catalog=catalog), like=s1)
    return s1.isel(time=0).compute(), s2.compute()


def test_a_well_known_collection_is_recognised_at_any_url(loopback, reference):
    found = stac.search_s1(SYNTHETIC_BBOX, DATES, catalog=loopback.url)  # a bare URL
    assert found.collection == stac.CATALOGS["planetary-computer"].s1
    cube = stac.load_s1(found, mosaic=True).isel(time=0)
    np.testing.assert_array_equal(cube.values, reference[0].values)


@pytest.mark.parametrize("shape", ["earth-search", "copernicus", "custom"])
def test_every_provider_shape_loads_the_same_reflectance(providers, reference, shape):
    collection = "s2-surface-reflectance" if shape == "custom" else None
    found = stac.search_s2(SYNTHETIC_BBOX, DATES, catalog=providers[shape], collection=collection)
    if shape != "custom":
        assert found.collection == stac.CATALOGS[shape].s2
    cube = stac.load_s2(found, like=reference[0])
    # Earth Search's raster:bands scale 1e-4 / offset -0.1 and CDSE's processing-baseline
    # offset both undo the +1000 of baseline 04.00: the same reflectance x 10 000
    np.testing.assert_allclose(cube.values, reference[1].values, atol=0.05)


def test_a_collection_described_only_by_its_metadata_loads_exactly(providers, reference):
    found = stac.search_s1(
        SYNTHETIC_BBOX, DATES, catalog=providers["custom"], collection="s1-gamma0"
    )
    assert found.collection.assets == {"vv": "gamma0_vv", "vh": "gamma0_vh"}
    assert found.collection.units == "linear" and found.collection.nodata == -32768
    cube = stac.load_s1(found, mosaic=True).isel(time=0)
    np.testing.assert_array_equal(cube.values, reference[0].values)


@pytest.mark.parametrize("shape", ["earth-search", "copernicus"])
def test_uncalibrated_grd_found_at_any_url_is_refused_when_loaded(providers, shape):
    found = stac.search_s1(SYNTHETIC_BBOX, DATES, catalog=providers[shape])
    assert found.collection.id == "sentinel-1-grd" and found.collection.units == "amplitude"
    with pytest.raises(UnitsError, match="uncalibrated"):
        stac.load_s1(found)


def test_what_cannot_be_told_is_asked_for_with_what_was_found(providers):
    url = providers["ambiguous"]
    with pytest.raises(InvalidOptionError, match=r"dB from linear.*Collection\('s1-backscatter'"):
        stac.search_s1(SYNTHETIC_BBOX, DATES, catalog=url, collection="s1-backscatter")
    with pytest.raises(InvalidOptionError, match="serves none of the Sentinel-2 collections"):
        stac.search_s2(SYNTHETIC_BBOX, DATES, catalog=url)
    with pytest.raises(InvalidOptionError, match="has no collection 'my-s1'"):
        stac.search_s1(SYNTHETIC_BBOX, DATES, catalog=url, collection="my-s1")


@pytest.mark.parametrize(
    ("name", "kind", "profile"),
    [
        ("planetary-computer_sentinel-1-rtc", "s1", "planetary-computer"),
        ("planetary-computer_sentinel-2-l2a", "s2", "planetary-computer"),
        ("earth-search_sentinel-2-l2a", "s2", "earth-search"),
        ("copernicus_sentinel-2-l2a", "s2", "copernicus"),
        ("earth-search_sentinel-1-grd", "s1", "earth-search"),
        ("copernicus_sentinel-1-grd", "s1", "copernicus"),
    ],
)
def test_real_providers_items_are_described_as_their_profile(name, kind, profile):
    item = pystac.Item.from_dict(json.loads((STORED / f"{name}.json").read_text()))
    assets = {k: a.to_dict() for k, a in item.assets.items()}
    assert discovery.describe(item.collection_id, kind, assets) == getattr(
        stac.CATALOGS[profile], kind
    )


class _TokenEndpoint(BaseHTTPRequestHandler):
    """A stand-in for the Planetary Computer's SAS token API."""

    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).asked.append(self.path)
        body = json.dumps({"token": "sv=floodxr&sig=test", "msft:expiry": "2999-01-01T00:00:00Z"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_planetary_computer_hrefs_are_signed_with_a_token(shared_data, tmp_path, monkeypatch):
    planetary_computer = pytest.importorskip("planetary_computer")
    from planetary_computer.sas import TOKEN_CACHE
    from planetary_computer.settings import Settings

    tokens = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    monkeypatch.setenv("PC_SDK_SAS_URL", f"http://127.0.0.1:{tokens.server_port}/token")
    Settings.get.cache_clear()
    TOKEN_CACHE.clear()
    port = free_port()
    world = write_stac_world(
        tmp_path,
        data_dir=shared_data,
        asset_base="https://floodxrtest.blob.core.windows.net/scenes",
    )
    try:
        with StacServer(world, port=port) as server:
            found = stac.search_s1(SYNTHETIC_BBOX, DATES, catalog=pc_catalog(server.url))
    finally:
        tokens.shutdown()
        Settings.get.cache_clear()
        TOKEN_CACHE.clear()
    hrefs = [a.href for item in found for a in item.assets.values()]
    assert hrefs and all(h.endswith("?sv=floodxr&sig=test") for h in hrefs)
    assert _TokenEndpoint.asked == ["/token/floodxrtest/scenes"]
    assert planetary_computer.__name__ == "planetary_computer"
