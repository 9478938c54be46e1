"""Running the app under uvicorn: JSON for the malformed requests uvicorn answers itself, and a test helper.

uvicorn's HTTP layer refuses a request it cannot parse (bad request line, bad header) before the app sees it,
with a text/plain 400. `JsonErrorH11Protocol` sends the service's `{"error": reason}` shape instead, so every
error a client can receive from this service is JSON.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Iterator

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": f"malformed HTTP request: {msg}"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def server_config(app, host: str, port: int, **options) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, http=JsonErrorH11Protocol, **options)


def run(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    uvicorn.Server(server_config(app, host, port, log_level="info")).run()


@contextlib.contextmanager
def serving_in_thread(app, host: str = "127.0.0.1", timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` on a free loopback port in a background thread; yields its base URL; stops it on exit."""
    server = uvicorn.Server(server_config(app, host, 0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
