"""A bare HTTP server on loopback answering 200 to any GET: what a wrong address reaches (https spoken to a
plain-http server, or a server whose TLS certificate nobody signed)."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(context: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """Serves on a free loopback port (``server.server_address[1]``) until ``shutdown()``; with ``context``, TLS."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
