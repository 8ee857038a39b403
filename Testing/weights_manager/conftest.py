"""Fixtures for the weights-manager tests: a local HTTP server that supports Range requests."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from UniversalSegLib.weights.entries import WeightsCatalog


@dataclass
class FileServer:
    """Serves ``files`` on 127.0.0.1; ``drop_after[path] = n`` cuts the next transfer after n bytes."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"


def _handler(server_state: FileServer) -> type[BaseHTTPRequestHandler]:
    class RangeHandler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0].lstrip("/")
            range_header = self.headers.get("Range")
            server_state.requests.append((path, range_header))
            data = server_state.files.get(path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if match and server_state.honour_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            drop = server_state.drop_after.pop(path, None)
            if drop is not None:
                self.wfile.write(body[:drop])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return RangeHandler


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A running :class:`FileServer` (stopped after the test)."""
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_catalog(items: dict[str, dict]) -> WeightsCatalog:
    """A catalog whose items use the test licenses: ``"restricted"`` (must accept) and ``"open"``."""
    return WeightsCatalog.from_dict(
        {
            "default_model": next(iter(items)),
            "licenses": {
                "restricted": {
                    "url": "https://example.org/l",
                    "text": "Test terms.",
                    "requires_acceptance": True,
                },
                "open": {"url": "https://example.org/o", "text": "Open.", "requires_acceptance": False},
            },
            "items": {name: {"kind": "model", "license": "open", **entry} for name, entry in items.items()},
        }
    )


@pytest.fixture
def catalog_factory():
    """:func:`make_catalog` as a fixture (test modules cannot import conftest)."""
    return make_catalog
