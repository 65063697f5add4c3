"""What operators and load balancers ask: ``/metrics``, ``/healthz``, ``/readyz``.

* ``/healthz``: liveness, 200 while the process answers (restart it otherwise);
* ``/readyz``: readiness, 200 when the database and the state store answer,
  503 (with which one failed) while either does not, 200 again once it is
  back: a load balancer sends no citizen to a node that cannot log them in.
  Each check gives up after ``[metrics] ready_timeout_seconds``;
* ``/metrics``: Prometheus text (``idp/app/metrics.py``), only to addresses of
  ``[metrics] allow``; another address gets 404, as if nothing were there,
  and an audit event ``metrics.refused``.

Every request is timed here (``sesame_http_request_seconds``), by Flask
endpoint: a bounded set of labels, never the raw path.
"""
from __future__ import annotations

import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from sqlalchemy import text

from idp.app import metrics

bp = Blueprint("ops", __name__)
_PROBE_KEY = "ops:ready-probe"
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sesame-ready")


def _services():
    return current_app.extensions["sesame"]


def allowed_networks(values) -> tuple:
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)
    except ValueError as exc:
        from idp.errors import ConfigError

        raise ConfigError(f"[metrics] allow: {exc}") from None


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


def _database_ok(services) -> None:
    with services.database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _store_ok(services) -> None:
    services.store.get(_PROBE_KEY)


@bp.get("/readyz")
def readyz():
    services = _services()
    timeout = float(services.settings["metrics"]["ready_timeout_seconds"])
    futures = {name: _checks.submit(check, services) for name, check in (("database", _database_ok),
                                                                         ("store", _store_ok))}
    checks, deadline = {}, time.monotonic() + timeout
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            checks[name] = "ok"
        except FutureTimeout:
            checks[name] = "timeout"
        except Exception as exc:  # the reason's class only: no connection string in the answer
            checks[name] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        services.audit.log("ops.not_ready", result="not_ready", **checks)
    return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def metrics_view():
    services = _services()
    networks = current_app.extensions["sesame.metrics_allow"]
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        address = None
    if address is None or not any(address in net for net in networks):
        services.audit.record("metrics.refused", result="address_not_allowed", remote_addr=request.remote_addr)
        abort(404)
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


def init_ops(app, settings) -> None:
    conf = settings["metrics"]
    app.extensions["sesame.metrics_allow"] = allowed_networks(conf["allow"])
    if conf["enabled"]:
        app.register_blueprint(bp)
    else:  # health checks stay: a load balancer needs them whatever the metrics
        app.add_url_rule("/healthz", "ops_healthz", healthz)
        app.add_url_rule("/readyz", "ops_readyz", readyz)

    @app.before_request
    def _start_timer():
        g.ops_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = getattr(g, "ops_started", None)
        if started is not None:
            metrics.LATENCY.labels(request.endpoint or "none", request.method,
                                   f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
        return response
