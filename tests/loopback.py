"""A real HTTP receiver on loopback for the tests of what the monitor posts (the Pushgateway
path, the alert webhook): each POST is recorded as ``record(handler, body)`` returns it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class Receiver:
    def __init__(self, address: str, status: int) -> None:
        self.address = address  # host:port
        self.status = status  # what the next POST is answered with
        self.received: list = []


@contextmanager
def http_receiver(record: Callable[[BaseHTTPRequestHandler, bytes], object], status: int = 200):
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append(record(self, body))
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"127.0.0.1:{server.server_port}", status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(10)
