"""Basin runs on a real LocalCluster (worker processes) against the loopback STAC API."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box, shape

from floodxr import basin
from floodxr.data import stac
from floodxr.errors import BasinInputError, InvalidOptionError, RunMismatchError
from floodxr.testing.stac import SYNTHETIC_BASINS, synthetic_water_km2

DATES = "2019-09-01/2019-09-30"
BEFORE = "2019-09-01/2019-09-15"  # the first pass only: the flood's reference
UNITS = {
    f"{b}/{t}" for b in ("west", "east") for t in ("2019-09-13T05:59:50Z", "2019-09-25T05:59:50Z")
}


def checksums(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def basins_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("basins") / "basins.geojson"
    path.write_text(json.dumps(SYNTHETIC_BASINS))
    return path


@pytest.fixture(scope="module")
def catalog(loopback) -> stac.Catalog:
    return stac.get_catalog("planetary-computer").with_url(loopback.url)


@pytest.fixture(scope="module")
def client():
    client = basin.start_cluster(2)
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def first(client, basins_file, catalog, tiny_student, tmp_path_factory) -> basin.BasinRun:
    """One uninterrupted run: the store every other run must reproduce byte for byte."""
    store = tmp_path_factory.mktemp("first") / "out.zarr"
    return basin.run(
        basins_file,
        datetime=DATES,
        catalog=catalog,
        store=store,
        model=tiny_student,
        reference_dates=BEFORE,
        client=client,
        chunk=256,
        progress=False,
        polygons=True,
    )


def test_each_unit_has_its_flood_polygons_beside_the_store(first):
    import geopandas as gpd
    import pandas as pd

    areas = first.areas.set_index(["basin", "time"])
    for key in sorted(UNITS):
        basin_id, when = key.split("/")
        stamp = when.rstrip("Z").replace("-", "").replace(":", "")
        path = first.store.with_suffix(".polygons") / basin_id / f"{stamp}.parquet"
        polygons = gpd.read_parquet(path)
        flood = areas.loc[(basin_id, pd.Timestamp(when)), "flood_km2"]
        assert polygons.area_km2.sum() == pytest.approx(flood, rel=0.005, abs=1e-6)


def test_a_run_maps_every_basin_and_pass_into_one_store(first):
    assert set(first.computed) == UNITS and not first.skipped and not first.empty
    for basin_id, epsg in (("west", 32630), ("east", 32631)):
        ds = basin.open_basin(first.store, basin_id)
        assert ds.rio.crs.to_epsg() == epsg
        assert ds.sizes["time"] == 2 and str(ds.water.dtype) == "uint8"
        water = ds.water.values
        assert set(np.unique(water)) == {0, 1, 255}
        # outside the polygon: nodata, in every corner of the basin's bounding box
        assert (water[:, [0, 0, -1, -1], [0, -1, 0, -1]] == 255).all()
        # no radar (outside the polygon): no probability; excluded: a probability, no water
        no_data = (ds.exclusion.values & 32) != 0
        assert np.isnan(ds.probability.values[no_data]).all()
        assert np.isfinite(ds.probability.values[~no_data]).all()
        assert ((water == 255) == (ds.exclusion.values != 0)).all()
    table = first.table.read_text().splitlines()
    assert table[0].startswith("basin,time,water_km2,flood_km2,observed_km2,excluded_km2")
    assert len(table) == 1 + len(UNITS)


def test_areas_match_the_synthetic_truth_within_one_percent(first):
    truth = {
        f["properties"]["id"]: [
            synthetic_water_km2(shape(f["geometry"]), i, spacing=4) for i in (0, 1)
        ]
        for f in SYNTHETIC_BASINS["features"]
    }
    areas = first.areas.set_index(["basin", first.areas["time"].dt.day])
    for basin_id, (before, after) in truth.items():
        row0, row1 = areas.loc[(basin_id, 13)], areas.loc[(basin_id, 25)]
        assert row0.water_km2 == pytest.approx(before, rel=0.01)
        assert row1.water_km2 == pytest.approx(after, rel=0.01)
        # the whole basin was seen; its polygon area is geodesic
        assert row1.observed_km2 == pytest.approx(row1.basin_km2, rel=0.002)
        # flood = new water: the lake grew in the west, the river (east) stayed
        assert row0.flood_km2 < 0.01 * before
        assert row1.flood_km2 == pytest.approx(after - before, abs=0.01 * after)
    assert areas.loc[("west", 25)].flood_km2 > 4.0


def test_workers_get_their_environment_and_ours_is_left_alone():
    before = dict(os.environ)
    client = basin.start_cluster(1)
    try:
        assert dict(os.environ) == before
        names = ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
        seen = client.run(lambda: [os.environ.get(n) for n in names]).popitem()[1]
        assert seen == [basin.WORKER_ENVIRON[n] for n in names]
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def test_the_model_travels_once_to_each_worker(first, client, tiny_student):
    digest = hashlib.sha256(Path(tiny_student).read_bytes()).hexdigest()
    name = f"floodxr-{digest[:16]}"

    def where() -> str:
        from floodxr import models

        return str(models.resolve(name))

    paths = client.run(where)
    assert len(paths) == 2
    for path in paths.values():
        assert path != tiny_student and "floodxr-models" in path
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest


def test_a_rerun_does_nothing(first, client, basins_file, catalog, tiny_student):
    before = checksums(first.store)
    again = basin.run(
        basins_file,
        datetime=DATES,
        catalog=catalog,
        store=first.store,
        model=tiny_student,
        reference_dates=BEFORE,
        client=client,
        chunk=256,
        progress=False,
    )
    assert again.computed == [] and set(again.skipped) == UNITS
    assert checksums(first.store) == before


def test_a_killed_worker_still_gives_the_same_store(
    first, client, basins_file, catalog, tiny_student, tmp_path
):
    store = tmp_path / "killed.zarr"
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["run"] = basin.run(
                basins_file,
                datetime=DATES,
                catalog=catalog,
                store=store,
                model=tiny_student,
                reference_dates=BEFORE,
                client=client,
                chunk=256,
                progress=False,
            )
        except BaseException as err:  # noqa: BLE001  re-raised in the test's thread
            outcome["error"] = err

    pids = client.run(os.getpid)
    thread = threading.Thread(target=work)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        busy = [address for address, tasks in client.processing().items() if tasks]
        if busy and (store / "manifest.json").is_file():
            killed = pids[busy[0]]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(timeout=300)
    assert killed is not None, "the run finished before a worker could be killed"
    assert "error" not in outcome, outcome.get("error")
    assert killed not in client.run(os.getpid).values()  # the nanny started a new process
    assert checksums(store) == checksums(first.store)


def assert_whole_store(store: Path) -> None:
    """Every file of a basin store under its final name reads whole: the JSON and CSV records,
    the polygons beside it, and every chunk of every array (zarr writes chunks atomically)."""
    import zarr

    for path in store.rglob("*"):
        if path.is_dir() or ".partial" in path.name or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".parquet":
            gpd.read_parquet(path)
    with warnings.catch_warnings():
        # the store's own records (manifest.json) sit beside the groups: not zarr's
        warnings.filterwarnings("ignore", "Object at .* is not recognized", UserWarning)
        arrays = [
            member
            for _, member in zarr.open_group(store, mode="r").members(max_depth=None)
            if isinstance(member, zarr.Array)
        ]
    assert arrays
    for array in arrays:
        array[...]  # noqa: B018 - decompresses every chunk written so far


def test_a_killed_run_resumes_from_the_command_line(
    first, basins_file, loopback, tiny_student, tmp_path
):
    store = tmp_path / "resumed.zarr"
    command = [
        sys.executable,
        "-m",
        "floodxr.cli",
        "basin",
        "--basins",
        str(basins_file),
        "--datetime",
        DATES,
        "--catalog",
        loopback.url,
        "--store",
        str(store),
        "--model",
        tiny_student,
        "--reference-dates",
        BEFORE,
        "--chunk",
        "256",
        "--workers",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    manifest = store / "manifest.json"
    deadline = time.monotonic() + 180
    while process.poll() is None and time.monotonic() < deadline:
        if manifest.is_file() and json.loads(manifest.read_text())["units"]:
            os.killpg(process.pid, signal.SIGKILL)  # the client and its cluster
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    done = set(json.loads(manifest.read_text())["units"])
    assert done and done < UNITS
    assert_whole_store(store)  # after the kill: every file under its final name is whole
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"units computed now: {len(UNITS - done)}, already in the store: {len(done)}" in (
        resumed.stdout
    )
    assert checksums(store) == checksums(first.store)
    assert "dask dashboard: http" in resumed.stdout and "west" in resumed.stdout

    png = tmp_path / "areas.png"
    report = subprocess.run(
        [sys.executable, "-m", "floodxr.cli", "basin-report", str(store), "--png", str(png)],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    assert len(report.stdout.splitlines()) == 1 + len(UNITS)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_new_passes_are_appended_and_a_water_mask_can_be_the_reference(
    first, client, basins_file, catalog, tiny_student, tmp_path
):
    import rasterio
    from affine import Affine

    from floodxr.testing.stac import SYNTHETIC_BBOX, synthetic_water

    # the pre-flood water as a lon/lat GeoTIFF (0.0001° pixels), as a user's permanent-water layer
    west, south, east, north = SYNTHETIC_BBOX
    step = 1e-4
    lon = west + (np.arange(round((east - west) / step)) + 0.5) * step
    lat = north - (np.arange(round((north - south) / step)) + 0.5) * step
    mask = synthetic_water(*np.meshgrid(lon, lat), 0)
    path = tmp_path / "permanent_water.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=lon.size,
        height=lat.size,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        nodata=255,
        transform=Affine(step, 0, west, 0, -step, north),
    ) as dst:
        dst.write(mask, 1)
    store = tmp_path / "appended.zarr"
    common = {
        "catalog": catalog,
        "store": store,
        "model": tiny_student,
        "reference_mask": path,
        "client": client,
        "chunk": 256,
        "progress": False,
    }
    early = basin.run(basins_file, datetime="2019-09-01/2019-09-15", **common)
    assert {k.split("/")[1] for k in early.computed} == {"2019-09-13T05:59:50Z"}
    later = basin.run(basins_file, datetime=DATES, **common)
    assert set(later.computed) == UNITS - set(early.computed) and len(later.skipped) == 2
    assert basin.open_basin(store, "west").sizes["time"] == 2
    ours = later.areas.set_index(["basin", "time"])
    theirs = first.areas.set_index(["basin", "time"])
    assert np.allclose(ours.water_km2, theirs.water_km2, rtol=1e-9)
    # the mask and the first pass's median map agree on the pre-flood water to within 1 %
    assert np.allclose(ours.flood_km2, theirs.flood_km2, atol=0.01 * ours.water_km2.max())


def test_other_settings_on_an_existing_store_are_refused(
    first, client, basins_file, catalog, tiny_student
):
    def again(**changes):
        settings = {
            "datetime": DATES,
            "catalog": catalog,
            "store": first.store,
            "model": tiny_student,
            "reference_dates": BEFORE,
            "client": client,
            "chunk": 256,
        }
        return basin.run(basins_file, **(settings | changes))

    with pytest.raises(RunMismatchError, match=r"resolution: store has 10.0, asked 20.0"):
        again(resolution=20)
    # the exclusion is part of what a store holds: a run without it is another run
    with pytest.raises(RunMismatchError, match=r"layers: store has .*cop-dem-glo-30"):
        again(exclusion=False)
    for given, message in (
        ({"threads": 2}, "with client= the cluster's own workers"),
        ({"engine": "gpu"}, "engine must be one of"),
        ({"reference_water": False}, "reference was given with reference_water=False"),
    ):
        with pytest.raises(InvalidOptionError, match=message):
            again(**given)
    moved = {"west": box(-0.05, 39.01, -0.01, 39.04)}
    with pytest.raises(RunMismatchError, match=r"basin 'west' .* another polygon"):
        basin.run(
            moved,
            datetime=DATES,
            catalog=catalog,
            store=first.store,
            model=tiny_student,
            reference_dates=BEFORE,
            client=client,
            chunk=256,
        )


def test_bad_basins_are_named(tmp_path):
    with pytest.raises(BasinInputError, match=r"no property 'HYBAS_ID'.*\['id'\]"):
        path = tmp_path / "b.geojson"
        path.write_text(json.dumps(SYNTHETIC_BASINS))
        basin.read_basins(path, id_column="HYBAS_ID")
    twice = {"type": "FeatureCollection", "features": SYNTHETIC_BASINS["features"] * 2}
    path.write_text(json.dumps(twice))
    with pytest.raises(BasinInputError, match="'west' appears twice"):
        basin.read_basins(path)
    with pytest.raises(BasinInputError, match="is a Point"):
        basin.read_basins({"p": {"type": "Point", "coordinates": [0, 0]}})
    with pytest.raises(BasinInputError, match="invalid polygon.*make_valid"):
        bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
        basin.read_basins({"bowtie": bowtie})
    with pytest.raises(BasinInputError, match="not lon/lat"):
        basin.read_basins({"utm": box(500000, 4300000, 510000, 4310000)})
    with pytest.raises(InvalidOptionError, match="thresholds whole scenes"):
        basin.run(
            {"a": box(0, 39, 0.01, 39.01)}, datetime=DATES, store=tmp_path / "s.zarr", model="otsu"
        )


def test_a_table_with_a_geometry_column_is_read():
    import pandas as pd

    table = pd.DataFrame(
        {
            "HYBAS_ID": [2060000010, 2060000020],
            "geometry": [box(0, 39, 0.1, 39.1), box(0.1, 39, 0.2, 39.1)],
        }
    )
    basins = basin.read_basins(table, id_column="HYBAS_ID")
    assert [b.id for b in basins] == ["2060000010", "2060000020"]
    assert basins[0].epsg == 32631
    assert basins[0].area_km2 == pytest.approx(8.66 * 11.1, rel=0.01)


def test_the_old_reference_argument_still_works_and_warns(tmp_path):
    lake = {"lake": box(-0.05, 39.02, -0.02, 39.04)}
    mask = tmp_path / "water.tif"
    mask.write_bytes(b"not read by the check")
    with pytest.warns(FutureWarning, match="reference_dates="):
        *_, dates = basin.check_inputs(lake, datetime="2019-09", store="s", reference=BEFORE)
    with pytest.warns(FutureWarning):
        *_, water = basin.check_inputs(lake, datetime="2019-09", store="s", reference=mask)
    assert dates == basin.ReferenceDates(BEFORE) and water == basin.ReferenceMask(mask)
    with pytest.raises(InvalidOptionError, match="give one reference"):
        basin.check_inputs(
            lake, datetime="2019-09", store="s", reference_dates=BEFORE, reference_mask=mask
        )
    with pytest.raises(BasinInputError, match="not a STAC interval"):
        basin.check_inputs(lake, datetime="2019-09", store="s", reference_dates="soon")


def test_a_map_and_a_basin_run_make_the_same_layers_of_a_pass(
    client, catalog, compact_student, tmp_path
):
    """One pass, one product: ``floodxr map`` over the west basin's box and a basin run over
    the basin give the same probability, exclusion, water, reference water and flood on
    every pixel both map."""
    import rasterio

    from floodxr.mapping import map_floods
    from floodxr.models import load
    from floodxr.options import set_options
    from floodxr.product import FLAGS

    west = next(f for f in SYNTHETIC_BASINS["features"] if f["properties"]["id"] == "west")
    # the network's whole context read around every window: exact whatever the windows
    context = int(load(compact_student).config.context)
    with set_options(halo=context):
        run = basin.run(
            {"west": shape(west["geometry"])},
            datetime=DATES,
            catalog=catalog,
            store=tmp_path / "west.zarr",
            model=compact_student,
            reference_dates=BEFORE,
            client=client,
            chunk=256,
            progress=False,
        )
        mapped = map_floods(
            shape(west["geometry"]).bounds,
            "2019-09-25",
            catalog=catalog,
            model=compact_student,
            reference=BEFORE,
            out=tmp_path / "map",
            progress=False,
        )
    stamp = next(iter(mapped.files))
    ds = basin.open_basin(run.store, "west").sel(time="2019-09-25").squeeze()
    layers = {}
    for name in ("probability", "exclusion", "water", "flood"):
        with rasterio.open(tmp_path / "map" / f"{stamp}_{name}.tif") as src:
            assert src.crs.to_epsg() == ds.rio.crs.to_epsg()
            values = src.read(1)
            x = src.transform.c + (np.arange(src.width) + 0.5) * src.transform.a
            y = src.transform.f + (np.arange(src.height) + 0.5) * src.transform.e
        layers[name] = xr_layer(values, y, x).reindex(y=ds.y, x=ds.x, method="nearest", tolerance=1)
    # the map reads its box only: within the network's context of its edges it sees a mirror
    # where the basin run read more radar
    inner = xr_layer(np.ones((len(y), len(x))), y, x)
    inner[:context, :] = inner[-context:, :] = inner[:, :context] = inner[:, -context:] = 0
    inner = inner.reindex(y=ds.y, x=ds.x, method="nearest", tolerance=1).fillna(0).values == 1
    both = inner & ((ds.exclusion.values & FLAGS["no_data"]) == 0)
    both &= (layers["exclusion"].values & FLAGS["no_data"]) == 0
    assert both.sum() > 50_000
    p_basin, p_map = ds.probability.values[both], layers["probability"].values[both]
    np.testing.assert_allclose(p_map, p_basin, atol=1e-5)
    assert (layers["exclusion"].values[both] == ds.exclusion.values[both]).all()
    assert (ds.exclusion.values[both] != 0).any()  # the comparison covers excluded pixels
    clear = np.abs(p_basin - 0.5) > 1e-4  # a cut between float-noise twins may fall either way
    assert (layers["water"].values[both][clear] == ds.water.values[both][clear]).all()
    reference = ds.reference.values[both][clear]
    basin_flood = np.where(
        (ds.water.values[both][clear] == 255) | (reference == 255),
        255,
        (ds.water.values[both][clear] == 1) & (reference == 0),
    )
    assert (layers["flood"].values[both][clear] == basin_flood).all()
    row = run.areas.set_index(run.areas.time.dt.day).loc[25]
    assert row.excluded_km2 > 0


def xr_layer(values, y, x):
    import xarray as xr

    return xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x})


def test_each_basin_stores_its_event_composite(first):
    """The composite in the store equals a plain numpy reduction of the stored passes."""
    manifest = json.loads((first.store / "manifest.json").read_text())
    for basin_id in ("west", "east"):
        ds = basin.open_basin(first.store, basin_id)
        water, reference = ds.water.values, ds.reference.values
        flood = np.where((water == 255) | (reference == 255), 255, (water == 1) & (reference == 0))
        flooded, seen = flood == 1, flood != 255
        expect = np.where(seen.any(0), flooded.any(0), 255)
        assert (ds.max_flood.values == expect).all()
        assert (ds.flooded_passes.values == flooded.sum(0)).all()
        assert (ds.observed_passes.values == seen.sum(0)).all()
        dates = np.array([int(str(t)[:10].replace("-", "")) for t in ds.time.values])
        last = np.where(flooded[1], dates[1], np.where(flooded[0], dates[0], 0))
        first_date = np.where(flooded[0], dates[0], np.where(flooded[1], dates[1], 0))
        assert (ds.last_flooded.values == last).all()
        assert (ds.first_flooded.values == first_date).all()
        entry = manifest["composites"][basin_id]
        assert entry["passes"] == 2 and entry["flood_km2"] >= max(
            first.areas.set_index("basin").loc[basin_id].flood_km2
        )
