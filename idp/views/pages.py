"""Pages outside a login: home, journeys without a portal, language switch, logout.
(Health and readiness: idp/views/ops.py.)"""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session

from idp.messages import KEYS

from idp.views.http import engine, http_input, logout_step, render, safe_next, services

bp = Blueprint("pages", __name__)


@bp.get("/")
def home():
    s = services()
    sso_session = s.sessions.get(session.get("sid"))
    person = s.people.get(sso_session.person_id) if sso_session else None
    activatable = engine().activatable_keys(person.fedid if person else None)
    return render_template("home.html", sso_session=sso_session, person=person, activatable=activatable,
                           key_labels=KEYS)


@bp.post("/journeys/login")
def start_login():
    """Log in to Sésame's own pages (or step up): a journey without a portal,
    ending back on the page that asked (``next``)."""
    try:
        level = int(request.form.get("level") or 0)
    except ValueError:
        level = 0
    return render(engine().sesame_login(done_url=safe_next(request.form.get("next")), min_level=level,
                                        http=http_input(create_browser=True)))


@bp.post("/journeys/activate/<key>")
def start_activation(key: str):
    """Activate a key, then back to the page that asked (``next``)."""
    return render(engine().activation(key=key, done_url=safe_next(request.form.get("next")),
                                      http=http_input(create_browser=True)))


@bp.get("/lang/<code>")
def language(code: str):
    if code in current_app.config["SESAME_LANGUAGES"]:
        session["lang"] = code
    return redirect(safe_next(request.args.get("next")), code=303)


@bp.post("/logout")
def logout():
    """The citizen logs out on Sésame: every portal of the session is told."""
    run_id = services().logout.from_citizen(sid=session.pop("sid", None))
    if run_id is None:
        return redirect("/", code=303)
    # A page, not a redirect: every hop of a redirect chain that starts with a form
    # post is held to this page's form-action 'self', which would block the portals.
    return logout_step(run_id)
