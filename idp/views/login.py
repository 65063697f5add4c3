"""The login page ("Choisissez votre clé numérique") and each key's steps."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from adapters.base import GROUP_ORDER
from idp import errors
from idp.views.flow import answer_error, run_outcome, services, step_context
from idp.messages import ERRORS, GROUPS, KEYS, error_message
from idp.app.web import browser_id

bp = Blueprint("login", __name__, url_prefix="/login")


def _transaction():
    return services().transactions.load(request.args.get("tx"), browser=browser_id(create=False))


def _adapter(tx, key: str):
    adapters = services().adapters
    if key not in adapters:
        raise errors.UnknownKey(f"no key {key[:40]!r}")
    if key not in tx.keys:
        raise errors.KeyNotAllowed(f"{key} not accepted for {tx.request.issuer}")
    return adapters[key]


@bp.get("/")
def choose():
    tx = _transaction()
    s = services()
    portal = s.registry.get(tx.request.issuer)
    groups = []
    for group in GROUP_ORDER:
        keys = [(k, KEYS.get(k, k)) for k in tx.keys if s.adapters[k].group == group]
        if keys:
            groups.append((GROUPS[group.value], keys))
    code = request.args.get("error")
    message = error_message(code) if code in ERRORS else None
    name = (portal.policy.display_name or portal.name) if portal else tx.request.issuer
    return render_template("login/choose.html", tx=tx, groups=groups, error=message,
                           error_code=code if message else None, portal_name=name)


@bp.get("/<key>/")
def begin(key: str):
    tx = _transaction()
    adapter = _adapter(tx, key)
    return run_outcome(adapter.begin(step_context(tx, key)), tx=tx, key=key, adapter=adapter)


@bp.route("/<key>/<step>", methods=["GET", "POST"])
def step(key: str, step: str):
    tx = _transaction()
    adapter = _adapter(tx, key)
    return run_outcome(adapter.action(step_context(tx, key), step), tx=tx, key=key, adapter=adapter)


@bp.post("/cancel")
def cancel():
    """The citizen gives up: the portal hears ``AuthnFailed``."""
    tx = _transaction()
    portal = services().registry.get(tx.request.issuer)
    if portal is None:
        raise errors.UnknownPortal("portal removed")
    services().audit.record("login.cancelled", portal=portal.entity_id, request_id=tx.request.request_id)
    return answer_error(tx, portal, errors.Cancelled("cancelled by the citizen"))
