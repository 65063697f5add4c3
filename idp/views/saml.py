"""SAML endpoints: metadata, single sign-on (HTTP-Redirect and HTTP-POST), single logout."""
from __future__ import annotations

import logging

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from markupsafe import escape

from idp import errors
from idp.app.i18n import current_language
from idp.journeys.answers import PostToPortal
from idp.saml.bindings import BINDING_POST, BINDING_REDIRECT, check_relay_state
from idp.saml.sso import PostForm
from idp.views.http import autopost, engine, http_input, logout_finish, logout_step, render, services

log = logging.getLogger("sesame.saml")
bp = Blueprint("saml", __name__, url_prefix="/saml")


@bp.get("/metadata")
def metadata():
    return Response(services().sso.metadata(), mimetype="application/samlmetadata+xml")


def _receive(handle, param: str = "SAMLRequest"):
    """Read a SAML message from either binding and hand it to ``handle``.

    Anything that makes the sender untrustworthy is audited and re-raised: the
    error page answers it, never the portal.
    """
    if request.method == "GET":
        binding, message, relay_state = BINDING_REDIRECT, request.args.get(param), request.args.get("RelayState")
        raw_query = request.query_string.decode("latin-1")
    else:
        binding, message, relay_state = BINDING_POST, request.form.get(param), request.form.get("RelayState")
        raw_query = None
    try:
        if not message:
            raise errors.MalformedRequest(f"no {param}")
        relay_state = check_relay_state(relay_state,
                                        max_bytes=int(services().settings.saml("max_relay_state_bytes")))
        return binding, relay_state, handle(binding=binding, message=message, raw_query=raw_query,
                                            relay_state=relay_state)
    except errors.SamlRequestError as exc:
        services().audit.record("saml.rejected", result=exc.code, remote_addr=request.remote_addr,
                                binding=binding.rsplit(":", 1)[-1], path=request.path, reason=exc.detail[:300])
        raise


@bp.route("/sso", methods=["GET", "POST"])
def sso():
    s = services()
    binding, relay_state, (saml_request, portal) = _receive(
        lambda relay_state, **message: s.sso.read(**message))
    s.audit.log("saml.request", portal=portal.entity_id, request_id=saml_request.request_id,
                remote_addr=request.remote_addr, signed=saml_request.signed)
    if binding == BINDING_POST and s.settings["session"]["cookie_name"] not in request.cookies:
        # A cross-site POST carries no SameSite=Lax cookie: park the request and
        # come back by a top-level GET, which does, before looking at the session.
        return render(engine().park(request=saml_request, portal=portal, relay_state=relay_state))
    answer = engine().portal_request(request=saml_request, portal=portal, relay_state=relay_state,
                                     http=http_input(create_browser=True))
    if isinstance(answer, PostToPortal) and answer.new_sid is None:
        return autopost_page(answer.form)
    return render(answer)


@bp.get("/resume")
def resume():
    return render(engine().resume(request.args.get("tx"), http_input(create_browser=True)))


@bp.route("/slo", methods=["GET", "POST"])
def slo():
    """Single logout: a portal's ``LogoutRequest`` starts a run; a portal's
    ``LogoutResponse`` to one of ours (inside its frame) is recorded."""
    s = services()
    if request.values.get("SAMLResponse") and not request.values.get("SAMLRequest"):
        g.frameable = True  # the answer arrives in a frame of Sésame's own logout page
        _, _, confirmed = _receive(lambda relay_state, **message: s.logout.portal_answered(**message),
                                   param="SAMLResponse")
        return render_template("logout_frame_done.html", confirmed=confirmed)
    _, _, (run_id, ended_sid) = _receive(
        lambda **message: s.logout.from_portal(cookie_sid=session.get("sid"), **message))
    if ended_sid is not None and session.get("sid") == ended_sid:
        session.pop("sid", None)
    return logout_step(run_id)


@bp.get("/slo/frame")
def slo_frame():
    """One portal's LogoutRequest, in a frame of the logout page."""
    g.frameable = True
    step = services().logout.frame(request.args.get("run"), request.args.get("portal"))
    return autopost(step.form) if step.form is not None else redirect(step.url, code=303)


@bp.get("/slo/status")
def slo_status():
    """How many frames of the logout page have not answered yet (the page's script asks)."""
    return jsonify(waiting=services().logout.waiting(request.args.get("run")))


@bp.get("/slo/finish")
def slo_finish():
    return logout_finish(request.args.get("run"))


# Stand-ins rendered once per (language, field, RelayState or not), replaced by the escaped values.
_ACTION, _MESSAGE, _RELAY = "\x1eaction\x1e", "\x1emessage\x1e", "\x1erelay\x1e"


def autopost_page(form) -> Response:
    """The autopost page of an answer from the SSO session (the hot path of single sign-on).

    The template of ``idp.views.http.autopost``, rendered once per language,
    field and presence of RelayState with stand-ins for the values, then
    filled with the values escaped as Jinja's autoescape escapes them
    (``markupsafe.escape``).  Flask's context processors are not run (they
    would load the session's person for the account pages' header): the page
    shows nothing but the form.  The security headers come from
    ``after_request`` as for every page; ``form-action`` allows the consumer
    URL's origin only.
    """
    parts = urlsplit(form.action)
    g.form_targets = [f"{parts.scheme}://{parts.netloc}"]
    config = current_app.config  # the language flask-babel would choose, without parsing a babel Locale
    lang = current_language(config["SESAME_LANGUAGES"], config["BABEL_DEFAULT_LOCALE"])
    pages = current_app.extensions.setdefault("sesame.autopost", {})
    key = (lang, form.field, form.relay_state is not None)
    pieces = pages.get(key)
    if pieces is None:
        template = current_app.jinja_env.get_template("autopost.html")
        stand_in = PostForm(_ACTION, _MESSAGE, _RELAY if form.relay_state is not None else None, form.field)
        page = template.render(form=stand_in, lang=str(get_locale()), static_prefix=url_for("static", filename=""))
        pieces = pages[key] = _split(page)
    values = {_ACTION: form.action, _MESSAGE: form.message, _RELAY: form.relay_state}
    body = "".join(piece if i % 2 == 0 else str(escape(values[piece])) for i, piece in enumerate(pieces))
    return Response(body, mimetype="text/html")


def _split(page: str) -> list[str]:
    """Text and stand-ins alternating: [text, stand-in, text, ...]."""
    pieces = [page]
    for mark in (_ACTION, _MESSAGE, _RELAY):
        out = []
        for i, piece in enumerate(pieces):
            if i % 2:
                out.append(piece)
                continue
            chunks = piece.split(mark)
            for j, chunk in enumerate(chunks):
                if j:
                    out.append(mark)
                out.append(chunk)
        pieces = out
    return pieces
