"""Reading a portal's metadata from where the operator says it is: a file or an http(s) URL.

Only the bytes are fetched here; ``parse_sp_metadata`` judges them.  Metadata
signatures are not verified (SAML metadata 2.0 §3): the operator vouches for
the source, so prefer https URLs or files received over a trusted channel.
"""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from metadata.errors import MetadataError

ACCEPT = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8"


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib would also follow to ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise MetadataError(f"metadata URL {req.full_url} redirects to {newurl}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    # build_opener adds the default handlers (http, https, redirects...); no file: or ftp: use
    # is possible since only http(s) URLs and http(s) redirects reach it.
    return urllib.request.build_opener(_HttpOnlyRedirects())


def load_metadata_source(source: str, *, timeout: float = 10, max_bytes: int = 1_000_000) -> bytes:
    """Return the bytes at ``source``: an ``http://`` or ``https://`` URL, else a file path.

    Any other URL scheme (``file:``, ``ftp:``...) is refused.  Raises
    ``MetadataError`` with the reason on any failure: unreadable file, HTTP
    status other than 200, network error or timeout, more than ``max_bytes``.
    """
    if not source or not source.strip():
        raise MetadataError("metadata source is empty")
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_url(source, timeout=timeout, max_bytes=max_bytes)
    if "://" in source or (len(scheme) > 1 and ":" in source and not os.path.exists(source)):
        raise MetadataError(f"metadata source {source!r}: only http and https URLs, or file paths, are accepted")
    return _read_file(Path(source), max_bytes=max_bytes)


def _read_file(path: Path, *, max_bytes: int) -> bytes:
    try:
        if not path.is_file():
            raise MetadataError(f"metadata file {str(path)!r} does not exist or is not a regular file")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise MetadataError(f"metadata file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise MetadataError(f"metadata file {str(path)!r} is larger than {max_bytes} bytes")
    return data


def _fetch_url(url: str, *, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "User-Agent": "Sesame-IdP metadata loader"})
    try:
        with _opener().open(request, timeout=timeout) as response:
            if response.status != 200:
                raise MetadataError(f"metadata URL {url} answered HTTP {response.status} {response.reason}")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise MetadataError(f"metadata URL {url} announces {length} bytes; the limit is {max_bytes}")
            data = _read_limited(response, url=url, timeout=timeout, max_bytes=max_bytes)
    except urllib.error.HTTPError as exc:
        raise MetadataError(f"metadata URL {url} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise MetadataError(f"metadata URL {url} could not be fetched: {exc.reason}") from None
    except TimeoutError:
        raise MetadataError(f"metadata URL {url} did not answer within {timeout:g} seconds") from None
    except (OSError, ValueError) as exc:
        raise MetadataError(f"metadata URL {url} could not be fetched: {exc}") from None
    return data


def _read_limited(response, *, url: str, timeout: float, max_bytes: int) -> bytes:  # noqa: ANN001
    # The socket timeout bounds each read; this deadline bounds the whole body (slow-drip servers).
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(min(65536, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise MetadataError(f"metadata URL {url} returned more than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise MetadataError(f"metadata URL {url} did not answer within {timeout:g} seconds")
    return b"".join(chunks)
