"""The login page ("Choisissez votre clé numérique"), each key's steps, the keys'
fixed return endpoints, public endpoints and static files.  Thin: the journey
engine (``idp.journeys.engine``) decides everything."""
from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, abort, redirect, request, send_from_directory, url_for

from adapters.base import GROUP_ORDER
from idp.messages import ERRORS, GROUPS, KEYS
from idp.views.http import engine, http_input, key_messages, render, services

bp = Blueprint("login", __name__, url_prefix="/login")
public = Blueprint("keys_public", __name__, url_prefix="/keys")



@bp.get("/")
def choose():
    s = services()
    code = request.args.get("error")
    known = code in ERRORS or code in key_messages()
    page = engine().choose(request.args.get("tx"), http_input(), code if known else None)
    offered = page.values["keys"]
    groups = []
    for group in GROUP_ORDER:
        keys = [(k, KEYS.get(k, k)) for k in offered if s.adapters[k].group == group]
        if keys:
            groups.append((GROUPS[group.value], keys))
    journey = page.values["journey"]
    name = journey.portal.display_name if journey.portal else None
    return render(replace(page, values={**page.values, "groups": groups, "portal_name": name}))


@bp.get("/<key>/")
def begin(key: str):
    return render(engine().begin(request.args.get("tx"), key, http_input()))


@bp.route("/<key>/<step>", methods=["GET", "POST"])
def step(key: str, step: str):
    return render(engine().step(request.args.get("tx"), key, step, http_input()))


@bp.route("/<key>/return", methods=["GET", "POST"])
def key_return(key: str):
    """A return from outside (itsme, an eIDAS node).  Exempt from the form CSRF
    check: the signed single-use state is the proof.  A cross-site POST carries
    no SameSite=Lax cookie, so it is parked and resumed by a top-level GET."""
    s = services()
    if request.method == "POST":
        if s.settings["session"]["cookie_name"] not in request.cookies:
            parked = s.returns.park(request.form.to_dict())
            return redirect(url_for("login.key_return", key=key, resume=parked), code=303)
        params = request.form.to_dict()
    elif request.args.get("resume"):
        params = s.returns.unpark(request.args["resume"])
    else:
        params = request.args.to_dict()
    return render(engine().key_return(key, params, http_input()))


@bp.get("/<key>/static/<path:filename>")
def key_static(key: str, filename: str):
    adapter = services().adapters.get(key)
    if adapter is None or adapter.static_folder is None:
        abort(404)
    return send_from_directory(adapter.static_folder, filename)


@bp.post("/cancel")
def cancel():
    """The citizen gives up: the portal hears ``AuthnFailed``."""
    return render(engine().cancel(request.args.get("tx"), http_input()))


@public.get("/<key>/<name>")
def key_public(key: str, name: str):
    """Public endpoints a key declares (a JWKS an OpenID provider fetches)."""
    return render(engine().public(key, name))
