"""The network: one pystac-client per API with retries and a timeout, STAC API failures as
:class:`~floodxr.errors.StacApiError`, and the same settings for GDAL's reads of the pixels.

Every value comes from :func:`floodxr.set_options` (``http_timeout``, ``http_retries``,
``http_backoff``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import warnings
from collections.abc import Iterator
from typing import Any

import pystac

from floodxr.data.catalogs import Catalog
from floodxr.errors import FloodxrError, StacApiError
from floodxr.options import OPTIONS

__all__ = ["api_errors", "gdal_env", "open_client"]

RETRY_STATUS = (429, 500, 502, 503, 504)


def open_client(cat: Catalog) -> Any:
    return _open_client(
        cat.url, cat.sign, OPTIONS["http_timeout"], OPTIONS["http_retries"], OPTIONS["http_backoff"]
    )


@functools.lru_cache(maxsize=16)
def _open_client(url: str, sign: str | None, timeout: float, retries: int, backoff: float) -> Any:
    """One client per API and network settings: pairing searches once per Sentinel-1 scene, and
    opening a client costs a request for the landing page."""
    import pystac_client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    retry = Retry(
        total=retries, backoff_factor=backoff, status_forcelist=RETRY_STATUS, allowed_methods=None
    )
    io = StacApiIO(max_retries=retry, timeout=timeout)
    modifier = _signer(url, sign)
    with api_errors(url, "open"):
        # Client.open resets the StacApiIO's timeout to its own argument: pass it again
        return pystac_client.Client.open(url, stac_io=io, modifier=modifier, timeout=timeout)


#: Where the Planetary Computer keeps its assets: hrefs there need a SAS token.
_BLOB_STORAGE = ".blob.core.windows.net"


def _signer(url: str, sign: str | None) -> Any:
    """The pystac-client modifier of a ``sign="planetary-computer"`` profile: signs every asset
    href on Azure Blob Storage (``planetary_computer.sign_inplace`` leaves other hrefs as they
    are, so a mirror or a loopback server serving its own files needs no token)."""
    if sign != "planetary-computer":
        return None
    try:
        import planetary_computer
    except ImportError:
        return _warn_unsigned
    return planetary_computer.sign_inplace


def _warn_unsigned(obj: Any) -> None:
    data = obj if isinstance(obj, dict) else getattr(obj, "to_dict", dict)()
    text = json.dumps(data, default=str)
    if _BLOB_STORAGE in text:
        from floodxr.errors import FloodxrWarning

        warnings.warn(
            "these assets are on the Planetary Computer's storage, which needs signed URLs, and "
            "the 'planetary-computer' package is not installed: reading pixels will fail with "
            "HTTP 403; pip install planetary-computer (or floodxr[planetary])",
            FloodxrWarning,
            stacklevel=2,
        )


@contextlib.contextmanager
def api_errors(url: str, what: str) -> Iterator[None]:
    """Turn the network failures of pystac-client / requests into :class:`StacApiError`."""
    import requests
    from pystac_client.exceptions import APIError

    try:
        yield
    except FloodxrError:
        raise  # floodxr's own, already saying what to change
    except (ValueError, KeyError, TypeError, AttributeError, pystac.STACError) as err:
        # json.JSONDecodeError is a ValueError: an HTML page, a proxy's error text, ...
        raise StacApiError(
            f"STAC API {url!r} gave an answer that is not STAC JSON when asked to {what} "
            f"({type(err).__name__}: {str(err)[:200]}); check that the URL is the API's root "
            "(its landing page is JSON with 'links'), not a web page or a static catalog file"
        ) from err
    except (requests.RequestException, APIError) as err:
        raise StacApiError(
            f"STAC API {url!r} failed to {what}: {_describe(err)}; check the URL "
            f"and your network; the request was retried {OPTIONS['http_retries']} "
            f"times with a {OPTIONS['http_timeout']} s timeout (floodxr."
            "set_options(http_timeout=..., http_retries=...) changes that)",
        ) from err


def _describe(err: BaseException) -> str:
    import requests

    # pystac-client re-raises requests' errors as APIError: look through the chain
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(c) for c in chain)
    if any(isinstance(c, requests.Timeout) for c in chain) or "timed out" in text:
        return f"no answer within {OPTIONS['http_timeout']} s"
    if any(isinstance(c, requests.ConnectionError) for c in chain) or (
        "Failed to establish a new connection" in text
    ):
        return "cannot connect (nothing answers at that address)"
    return str(err).strip().splitlines()[0][:300] if str(err).strip() else repr(err)


def gdal_env() -> Any:
    import stackstac

    timeout = max(1, int(math.ceil(OPTIONS["http_timeout"])))
    return stackstac.DEFAULT_GDAL_ENV.updated(
        always={
            "GDAL_HTTP_TIMEOUT": timeout,
            "GDAL_HTTP_CONNECTTIMEOUT": timeout,
            "GDAL_HTTP_MAX_RETRY": OPTIONS["http_retries"],
            "GDAL_HTTP_RETRY_DELAY": OPTIONS["http_backoff"],
            "GDAL_HTTP_RETRY_CODES": ",".join(str(c) for c in RETRY_STATUS),
        }
    )
