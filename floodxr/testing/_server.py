"""``python -m floodxr.testing._server``: the loopback STAC API + COG server of :class:`StacServer`.

One uvicorn process: stac-fastapi-static answers the STAC API over the static catalog, and
Starlette's ``StaticFiles`` (which honours HTTP Range requests, as GDAL needs for COGs) serves
the assets under ``/assets``.
"""

from __future__ import annotations

import argparse
from typing import Any


def create_app(catalog: str, assets: str) -> Any:
    """The ASGI app serving ``catalog`` (a static ``catalog.json``) and ``assets`` (a folder)."""
    from stac_fastapi.static.api import Settings, make_api
    from starlette.staticfiles import StaticFiles

    settings = Settings(
        catalog_href=catalog,
        assume_best_practice_layout=True,
        assume_absolute_hrefs=False,
        reload=False,
    )
    app = make_api(settings).app
    app.mount("/assets", StaticFiles(directory=assets), name="assets")
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--assets", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.catalog, args.assets), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
