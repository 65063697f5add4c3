"""The provider's side, as the connector sees it: one narrow HTTP interface
(``Http``: the only external I/O, replaced in tests) and the discovery
document and JWKS it serves, cached.

``UrllibHttp`` is the standard library's ``urllib.request`` with a timeout on
every call: a slow or absent token endpoint costs the citizen at most
``timeout`` seconds, then a clear page, never a hung worker.
"""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

MAX_BODY = 1_000_000  # bytes: a discovery document, a JWKS or a token is far smaller


class ProviderUnavailable(Exception):
    """The provider did not answer in time, or answered with an error page."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ProviderUnavailable("the answer is not JSON") from None


class Http(Protocol):
    def get(self, url: str, headers: Mapping[str, str] | None = None) -> HttpAnswer: ...
    def post(self, url: str, form: Mapping[str, str], headers: Mapping[str, str] | None = None) -> HttpAnswer: ...


class UrllibHttp:
    """HTTP(S) through urllib, with a timeout; redirects are not followed for POSTs."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def get(self, url, headers=None):
        return self._send(urllib.request.Request(url, headers=dict(headers or {}), method="GET"))

    def post(self, url, form, headers=None):
        body = urllib.parse.urlencode(dict(form)).encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", **dict(headers or {})})
        return self._send(request)

    def _send(self, request) -> HttpAnswer:
        if not request.full_url.startswith(("https://", "http://")):
            raise ProviderUnavailable(f"not an HTTP URL: {request.full_url[:80]}")
        request.add_header("Accept", "application/json, application/jwt")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return HttpAnswer(answer.status, answer.headers.get_content_type(), answer.read(MAX_BODY))
        except urllib.error.HTTPError as exc:  # 4xx/5xx: the body says why (OAuth error JSON)
            body = exc.read(MAX_BODY) if exc.fp else b""
            return HttpAnswer(exc.code, exc.headers.get_content_type() if exc.headers else "", body)
        except (OSError, ValueError) as exc:  # refused, reset, DNS, timeout (socket.timeout is an OSError)
            raise ProviderUnavailable(f"{type(exc).__name__}: {exc}"[:200]) from None


class Provider:
    """Discovery document and JWKS of one issuer, each fetched at most once per
    ``ttl`` seconds (and the JWKS again when a ``kid`` is unknown, at most once
    per ``refresh_interval``, so a forged ``kid`` cannot make us hammer it)."""

    def __init__(self, issuer: str, http: Http, *, clock: Callable[[], float], ttl: int,
                 refresh_interval: int = 30) -> None:
        self.issuer = issuer.rstrip("/")
        self.http = http
        self.clock = clock
        self.ttl = ttl
        self.refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._config: tuple[float, dict] | None = None
        self._jwks: tuple[float, dict] | None = None

    def config(self) -> dict:
        with self._lock:
            if self._config is None or self.clock() - self._config[0] > self.ttl:
                self._config = (self.clock(), self._fetch_config())
            return self._config[1]

    def _fetch_config(self) -> dict:
        answer = self.http.get(f"{self.issuer}/.well-known/openid-configuration")
        doc = answer.json() if answer.status == 200 else None
        if not isinstance(doc, dict):
            raise ProviderUnavailable(f"discovery answered {answer.status}")
        # OpenID Connect Discovery §4.3: the issuer in the document is the one we asked.
        if doc.get("issuer", "").rstrip("/") != self.issuer:
            raise ProviderUnavailable(f"discovery names another issuer {str(doc.get('issuer'))[:80]!r}")
        missing = [f for f in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not doc.get(f)]
        if missing:
            raise ProviderUnavailable(f"discovery lacks {', '.join(missing)}")
        return doc

    def jwks(self, refresh: bool = False) -> dict:
        with self._lock:
            now = self.clock()
            stale = self._jwks is None or now - self._jwks[0] > self.ttl
            if refresh and self._jwks is not None and now - self._jwks[0] < self.refresh_interval:
                return self._jwks[1]  # just fetched: a fresh copy would say the same
            if not (stale or refresh):
                return self._jwks[1]
        answer = self.http.get(self.config()["jwks_uri"])
        doc = answer.json() if answer.status == 200 else None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ProviderUnavailable(f"JWKS answered {answer.status}")
        with self._lock:
            self._jwks = (self.clock(), doc)
        return doc
