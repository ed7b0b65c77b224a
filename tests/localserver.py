"""A real HTTP server on 127.0.0.1 for tests that fetch URLs (no mocks, no network).

    with LocalServer() as server:
        server.route("/song.mp3", lambda h: reply(h, 200, data, "audio/mpeg"))
        fetch_url(server.url("/song.mp3"), ..., trusted=[server.host_port])

Every request is recorded (path and headers) so a test can prove a server was never contacted.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[[BaseHTTPRequestHandler], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        """Clients hang up on purpose in these tests (limits, timeouts): stay quiet."""


class LocalServer:
    """A threaded ``http.server`` whose routes are plain functions of the request handler."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.scheme = "https" if tls else "http"
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.requests.append((self.path, dict(self.headers.items())))
                route = owner.routes.get(self.path.split("?")[0])
                if route is None:
                    reply(self, 404, b"not found", "text/plain")
                else:
                    route(self)

            def log_message(self, format, *args) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        """The ``host:port`` form ``trusted=`` takes."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str | None = "application/octet-stream",
    headers: dict[str, str] | None = None,
    content_length: int | None = -1,
) -> None:
    """Send a whole response. ``content_length``: -1 the true length, None no header (the
    body is then delimited by closing the connection), any other number sent as is (a lie)."""
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    if content_length == -1:
        handler.send_header("Content-Length", str(len(body)))
    elif content_length is not None:
        handler.send_header("Content-Length", str(content_length))
    if content_length != -1:  # without a true length, only closing can end the body
        handler.send_header("Connection", "close")
        handler.close_connection = True
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    try:
        handler.wfile.write(body)
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


def redirect(location: str, status: int = 302) -> Handler:
    """A route answering with a redirect to ``location``."""
    return lambda h: reply(h, status, b"", None, {"Location": location})
