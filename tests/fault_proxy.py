"""An HTTP proxy on 127.0.0.1 that misbehaves on purpose in front of the loopback STAC server.

``FaultProxy(upstream, fail=2)`` answers the first two requests with HTTP 500, then forwards;
``stall=5`` sleeps 5 s before answering each request; ``fail=-1`` always fails. Only requests
whose path starts with ``prefix`` are affected. Headers (Range included) and bodies pass through.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# not forwarded; accept-encoding so that answers come back uncompressed and can be rewritten
_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "host",
    "content-length",
    "accept-encoding",
}


class FaultProxy:
    def __init__(self, upstream: str, *, fail: int = 0, stall: float = 0.0, prefix: str = "/"):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.fail, self.stall, self.prefix = fail, stall, prefix
        self.seen: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                proxy._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                proxy._handle(self)

            def do_HEAD(self) -> None:  # noqa: N802
                proxy._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        affected = request.path.startswith(self.prefix)
        with self._lock:
            if affected:
                self.seen.append(request.path)
            failing = affected and (self.fail < 0 or len(self.seen) <= self.fail)
        if affected and self.stall:
            time.sleep(self.stall)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        if failing:
            request.send_response(500)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=30
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        connection.request(request.command, request.path, body=body, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
        # links in STAC answers point at the upstream: rewrite them to go through the proxy
        if "json" in (answer.getheader("Content-Type") or ""):
            upstream = f"{self.upstream.scheme}://{self.upstream.netloc}".encode()
            content = content.replace(upstream, self.url.encode())
        request.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP:
                request.send_header(key, value)
        length = answer.getheader("Content-Length") if request.command == "HEAD" else None
        request.send_header("Content-Length", length or str(len(content)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(content)
        connection.close()

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
