"""Which STAC API server should the tests run on loopback? Start-up time and search fidelity.

Builds the floodxr test world (real Sen1Floods11 chips + synthetic scenes, see
``floodxr.testing.stac``), then for each server given on the command line: starts it, times the
first successful response, runs the searches floodxr makes (bbox + datetime + collections, CQL2
``filter`` on ``eo:cloud_cover``, paging) and checks each answer against the catalog itself.

Each server runs from the Python executable given for it, so that servers with conflicting
dependencies can be measured side by side::

    python benchmarks/stac_servers.py --data ../shared/data/sen1floods11 \\
        --static /venv-a/bin/python --geoparquet /venv-b/bin/python --rustac /venv-b/bin/rustac
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from floodxr.testing.stac import free_port, iter_items, write_stac_world


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _time(item: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def _cases(items: list[dict]) -> dict[str, tuple[dict, list[str]]]:
    """The searches pairing makes: S2 within ±36 h of India_900498's S1, with a cloud limit."""
    s1 = next(i for i in items if i["id"] == "India_900498_S1")
    start, end = _time(s1) - dt.timedelta(hours=36), _time(s1) + dt.timedelta(hours=36)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    window = {
        "collections": ["sen1floods11-s2"],
        "bbox": s1["bbox"],
        "datetime": f"{start:{stamp}}/{end:{stamp}}",
    }
    inside = [
        i
        for i in items
        if i["collection"] == "sen1floods11-s2"
        and start <= _time(i) <= end
        and i["bbox"] == s1["bbox"]
    ]
    clear = [i["id"] for i in inside if i["properties"]["eo:cloud_cover"] <= 12]
    cloud_filter = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 12]}
    return {
        "bbox+datetime": (window, sorted(i["id"] for i in inside)),
        "cql2 cloud filter": (
            window | {"filter": cloud_filter, "filter-lang": "cql2-json"},
            sorted(clear),
        ),
        "all s1 (paged by 4)": (
            {"collections": ["sen1floods11-s1"], "limit": 4},
            sorted(i["id"] for i in items if i["collection"] == "sen1floods11-s1"),
        ),
    }


def _search_all(url: str, body: dict) -> list[str]:
    ids, answer = [], _post(f"{url}/search", body)
    while True:
        ids += [f["id"] for f in answer["features"]]
        following = [link for link in answer.get("links", []) if link["rel"] == "next"]
        if not following:
            return sorted(ids)
        link = following[0]
        if link.get("method", "GET") == "POST":
            answer = _post(link["href"], link.get("body", body))
        else:
            with urllib.request.urlopen(link["href"], timeout=30) as response:
                answer = json.loads(response.read())


def _measure(name: str, command: list[str], env: dict, port: int, items: list[dict]) -> dict:
    url = f"http://127.0.0.1:{port}"
    began = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.perf_counter() - began > 60:
                    return {"server": name, "error": "did not start"}
                time.sleep(0.02)
        startup = time.perf_counter() - began
        result: dict = {"server": name, "startup_s": round(startup, 3)}
        for case, (body, expected) in _cases(items).items():
            try:
                got = _search_all(url, body)
                result[case] = "correct" if got == expected else f"WRONG: {got} != {expected}"
            except Exception as err:  # noqa: BLE001 - a server's failure is the measurement
                result[case] = f"ERROR {err}"
        body = _cases(items)["cql2 cloud filter"][0]
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            _post(f"{url}/search", body)
            times.append(time.perf_counter() - t0)
        result["search_ms_median"] = round(1000 * statistics.median(times), 1)
        return result
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a Sen1Floods11 folder")
    parser.add_argument("--static", help="python with stac-fastapi-static + uvicorn")
    parser.add_argument(
        "--geoparquet",
        help="python with stac-fastapi-geoparquet and, beside "
        "it, the rustac command (to write the stac-geoparquet file)",
    )
    parser.add_argument("--rustac", help="the rustac command")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    world = write_stac_world(root, data_dir=args.data)
    items = list(iter_items(world))
    results = []
    server_script = Path(__file__).parents[1] / "floodxr" / "testing" / "_server.py"
    if args.static:
        port = free_port()
        command = [
            args.static,
            str(server_script),
            "--catalog",
            str(world.catalog),
            "--assets",
            str(world.assets),
            "--port",
            str(port),
        ]
        results.append(_measure("stac-fastapi-static", command, {}, port, items))
    if args.geoparquet:
        parquet = root / "items.parquet"
        rustac = str(Path(args.geoparquet).with_name("rustac"))
        subprocess.run([rustac, "translate", str(_dump(items, root)), str(parquet)], check=True)
        port = free_port()
        command = [
            args.geoparquet,
            "-m",
            "uvicorn",
            "stac_fastapi.geoparquet.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = {"STAC_FASTAPI_GEOPARQUET_HREF": str(parquet), "PATH": "/usr/bin:/bin"}
        results.append(_measure("stac-fastapi-geoparquet", command, env, port, items))
    if args.rustac:
        port = free_port()
        command = [args.rustac, "serve", str(_dump(items, root)), "--addr", f"127.0.0.1:{port}"]
        results.append(_measure("rustac serve", command, {}, port, items))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for result in results:
            print(result)


def _dump(items: list[dict], root: Path) -> Path:
    path = root / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


if __name__ == "__main__":
    main()
