"""metadata.fetch: reading metadata from a file or an http(s) URL, with limits."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metadata.errors import MetadataError
from metadata.fetch import load_metadata_source

BODY = b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="urn:x:y"/>'


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/metadata.xml":
            self._send(200, BODY)
        elif self.path == "/big":
            self._send(200, b"x" * 5000)
        elif self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/metadata.xml")  # urllib alone would follow it
            self.end_headers()
        elif self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "/metadata.xml")
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(200, BODY)
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def refused(source: str, **kw) -> str:
    with pytest.raises(MetadataError) as info:
        load_metadata_source(source, **kw)
    return info.value.detail


def test_file(tmp_path):
    path = tmp_path / "sp.xml"
    path.write_bytes(BODY)
    assert load_metadata_source(str(path)) == BODY
    assert "does not exist" in refused(str(tmp_path / "missing.xml"))
    assert "not a regular file" in refused(str(tmp_path))
    assert "larger than 10 bytes" in refused(str(path), max_bytes=10)


def test_url(server):
    assert load_metadata_source(f"{server}/metadata.xml") == BODY
    assert load_metadata_source(f"{server}/to-metadata") == BODY


def test_url_errors(server):
    assert "answered HTTP 404" in refused(f"{server}/nothing")
    assert "announces 5000 bytes; the limit is 1000" in refused(f"{server}/big", max_bytes=1000)
    assert "returned more than 1000 bytes" in refused(f"{server}/big-chunked", max_bytes=1000)
    assert "which is not http(s)" in refused(f"{server}/to-ftp")
    assert "could not be fetched" in refused("http://127.0.0.1:1/metadata.xml", timeout=2)


def test_url_timeout(server):
    assert "within 0.5 seconds" in refused(f"{server}/slow", timeout=0.5)


@pytest.mark.parametrize("source", ["file:///etc/passwd", "ftp://example.org/md.xml", "data:text/xml,<x/>", ""])
def test_other_schemes_refused(source):
    detail = refused(source)
    assert "only http and https URLs" in detail or "empty" in detail
