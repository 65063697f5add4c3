"""Prometheus metrics (prometheus-client, the Prometheus project's own library).

Observed from the outside rather than counted inside the login path: almost
every fact operators want is already an audit event, so ``MetricsAudit``
wraps the audit port and counts events as they pass; ``TimedSigner`` wraps
the signer; ``ObservedStore`` wraps the state store and counts its errors;
``idp/views/ops.py`` times each request.  The engine is not touched.

Multi-process (``sesame serve --workers N``, gunicorn): each worker has its
own counters, and a scrape reaches one worker only.  When the environment
variable ``PROMETHEUS_MULTIPROC_DIR`` names an empty folder at start (it is
read when prometheus-client is imported: set it in the service's
environment, see contrib/systemd/sesame.service), every worker writes its
values there and ``/metrics`` sums them (prometheus-client's multiprocess
mode).  Only counters and histograms are used, which that mode sums without
per-metric settings.  Without the variable (one process, tests), the
process's own registry answers.
"""
from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from keys.algorithms import SAML_ISSUER
from keys.signer import Signer

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIGN_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

LOGINS = Counter("sesame_logins", "Login attempts by key and result (ok or the refusal's code)", ["key", "result"])
SSO_RESPONSES = Counter("sesame_sso_responses", "SAML responses sent to portals, by result "
                                                "(ok, reused: from the SSO session, or the SAML error code)", ["result"])
LOCKOUTS = Counter("sesame_lockouts", "Accounts locked after too many failures, by key", ["key"])
RATE_LIMITED = Counter("sesame_rate_limited", "Credential checks refused by [limits] (or too busy), by key and reason",
                       ["key", "reason"])
STORE_ERRORS = Counter("sesame_store_errors", "Errors of the state store (Redis or SQL), by operation", ["operation"])
AUDIT_EVENTS = Counter("sesame_audit_events", "Audit events by event name", ["event"])
SIGNING = Histogram("sesame_signing_seconds", "Time to sign (responses, metadata, logout messages)", ["backend"],
                    buckets=_SIGN_BUCKETS)
LATENCY = Histogram("sesame_http_request_seconds", "Response latency by Flask endpoint and status class",
                    ["endpoint", "method", "status"], buckets=_LATENCY_BUCKETS)


def _label(value: Any) -> str:
    return str(value or "none")[:40]


def render() -> tuple[bytes, str]:
    """The exposition text of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def count_event(event: str, result: str | None, key: str | None) -> None:
    AUDIT_EVENTS.labels(_label(event)).inc()
    if event == "login.success":
        LOGINS.labels(_label(key), "ok").inc()
    elif event in ("login.failure", "login.refused", "login.lockout"):
        LOGINS.labels(_label(key), _label(result)).inc()
        if event == "login.lockout":
            LOCKOUTS.labels(_label(key)).inc()
    elif event in ("login.rate_limited", "login.busy"):
        LOGINS.labels(_label(key), _label(result)).inc()
        RATE_LIMITED.labels(_label(key), _label(result)).inc()
    elif event == "saml.response":
        SSO_RESPONSES.labels(_label(result or "ok")).inc()
    elif event == "sso.reuse":
        SSO_RESPONSES.labels("reused").inc()


class MetricsAudit:
    """The audit port, counting each event into the metrics on its way through."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def record(self, event: str, *, result: str = "ok", **fields: Any) -> None:
        self._inner.record(event, result=result, **fields)
        count_event(event, result, fields.get("key"))

    def log(self, event: str, **fields: Any) -> None:
        self._inner.log(event, **fields)
        count_event(event, fields.get("result"), fields.get("key"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TimedSigner(Signer):
    """A ``Signer`` that times every signature of the one it wraps."""

    def __init__(self, inner: Signer, backend: str) -> None:
        self.inner, self._backend = inner, backend

    @property
    def _histogram(self):
        # Labelled by what holds the key signing now (HsmSigner, FileSigner), which a rollover changes.
        current = getattr(self.inner, "current", None)
        return SIGNING.labels(type(current()).__name__ if current else self._backend)

    def __getattr__(self, name: str) -> Any:  # keyring, fallback... of the wrapped signer
        return getattr(self.inner, name)

    @property
    def certificate_pem(self) -> bytes:
        return self.inner.certificate_pem

    @property
    def default_algorithm(self) -> str:
        return self.inner.default_algorithm

    def certificate_b64(self) -> str:
        return self.inner.certificate_b64()

    def sign_bytes(self, data: bytes, *, algorithm: str | None = None) -> bytes:
        start = time.perf_counter()
        try:
            return self.inner.sign_bytes(data, algorithm=algorithm)
        finally:
            self._histogram.observe(time.perf_counter() - start)

    def sign_xml(self, xml, *, reference_id: str, insert_after_tag: str | None = SAML_ISSUER,
                 algorithm: str | None = None) -> bytes:
        start = time.perf_counter()
        try:
            return self.inner.sign_xml(xml, reference_id=reference_id, insert_after_tag=insert_after_tag,
                                       algorithm=algorithm)
        finally:
            self._histogram.observe(time.perf_counter() - start)

    def sign_element(self, target, *, insert_after_tag: str | None = SAML_ISSUER, algorithm: str | None = None) -> None:
        start = time.perf_counter()
        try:
            self.inner.sign_element(target, insert_after_tag=insert_after_tag, algorithm=algorithm)
        finally:
            self._histogram.observe(time.perf_counter() - start)


class ObservedStore:
    """The state store, counting the errors its operations raise (then raising them)."""

    _OPERATIONS = frozenset({"put", "get", "delete", "add", "pop", "incr", "replace", "ttl", "purge_expired"})

    def __init__(self, inner) -> None:
        self._inner = inner
        # Each operation wrapped once, here: store calls are on the hot path of single
        # sign-on, and a wrapper made at every attribute lookup would cost each of them.
        for name in self._OPERATIONS:
            setattr(self, name, self._observed(name, getattr(inner, name)))

    def __getattr__(self, name: str) -> Any:  # what is not an operation (prefix, clock, close...)
        return getattr(self._inner, name)

    @staticmethod
    def _observed(name: str, operation):
        def observed(*args, **kwargs):
            try:
                return operation(*args, **kwargs)
            except ValueError:  # the caller's mistake (a bad key or ttl), not the store's
                raise
            except Exception:
                STORE_ERRORS.labels(name).inc()
                raise

        return observed
