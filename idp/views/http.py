"""HTTP glue between Flask and the journey engine: the request in narrow form
(``HttpInput``), the engine's answers rendered, the URLs the engine hands out.

The only place that turns an engine answer (``idp.journeys.answers``) into a
Flask response; views stay thin.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, g, jsonify, redirect, render_template, request, session, url_for

from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from idp.journeys.answers import Answer, DocumentAnswer, Go, JsonAnswer, Page, PostToPortal
from idp.journeys.context import HttpInput
from idp.messages import KEY_NAMES, KEYS, error_message
from idp.saml.single_logout import Done, Frames
from idp.saml.sso import PostForm
from idp.app.web import browser_id


def services():
    return current_app.extensions["sesame"]


def engine():
    return current_app.extensions["sesame.journeys"]


def session_language() -> str | None:
    return session.get("lang")


def key_messages() -> dict:
    """Every key's own messages: the key choice shows the code a key's ``Failure`` left."""
    return {code: text for a in services().adapters.values() for code, text in a.messages.items()}


def http_input(*, create_browser: bool = False) -> HttpInput:
    body = request.get_json(silent=True) if request.is_json else None
    return HttpInput(method=request.method, form=request.form.to_dict(), args=request.args.to_dict(),
                     remote_addr=request.remote_addr or "", browser=browser_id(create=create_browser),
                     sid=session.get("sid"), lang=session_language(),
                     json=body if isinstance(body, dict) else None)


def safe_next(target: str | None) -> str:
    """A page of Sésame's to go back to, else ``/``: never an open redirect.

    Only a path (no scheme, no host, no ``//``), without any control character,
    white space or backslash (a browser drops a TAB or a newline and would read
    ``/\t/evil.example`` as ``//evil.example``), naming a route of this
    application (an allow-list: the URL map).
    """
    if not target or len(target) > 2048 or target.startswith("//"):
        return "/"
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return "/"
    try:
        current_app.url_map.bind("sesame").match(parts.path, method="GET")
    except HTTPException:  # no such page, or one that answers only POST (or a redirect)
        return "/"
    except RoutingException:
        return "/"
    return target


def autopost(form: PostForm):
    """The page that posts a SAML message to the portal (SAML bindings §3.5.4)."""
    parts = urlsplit(form.action)
    g.form_targets = [f"{parts.scheme}://{parts.netloc}"]
    return render_template("autopost.html", form=form)


def render(answer: Answer):
    if answer.new_sid is not None:
        session["sid"] = answer.new_sid
    if isinstance(answer, PostToPortal):
        return autopost(answer.form)
    if isinstance(answer, Go):
        return redirect(answer.url, code=303)
    if isinstance(answer, JsonAnswer):
        return jsonify(dict(answer.data)), answer.status
    if isinstance(answer, DocumentAnswer):
        return current_app.response_class(answer.body, mimetype=answer.content_type)
    if isinstance(answer, Page):
        values = dict(answer.values)
        adapter = values.get("adapter")
        code = values.get("error_code")
        extra = adapter.messages if adapter is not None else key_messages()
        if values.get("key"):  # the key's name, as the login page and "Mes clés numériques" say it
            values.setdefault("key_label", KEYS.get(values["key"], values["key"]))
            values.setdefault("key_name", KEY_NAMES.get(values["key"], values["key"]))
        values["error"] = error_message(code, values.get("error_params"), extra=extra) if code else None
        g.page_policy = answer.policy
        return render_template(answer.template, **values), answer.status
    raise TypeError(f"not an answer: {answer!r}")


def logout_step(run_id: str):
    """The browser's first step of a single-logout run (``idp.saml.single_logout``):
    the page whose frames tell the front-channel portals, or at once the end."""
    step = services().logout.start(run_id)
    if isinstance(step, Frames):
        g.frame_sources = list(step.origins)
        return render_template("logging_out.html", frames=step.frames, run_id=step.run_id, wait=step.wait_seconds)
    return _logout_end(step)


def logout_finish(run_id: str | None):
    return _logout_end(services().logout.finish(run_id))


def _logout_end(step):
    if isinstance(step, Done):
        return render_template("logged_out.html", partial=step.partial, unreachable=step.unreachable)
    return autopost(step.form) if step.form is not None else redirect(step.url, code=303)


class FlaskUrls:
    """The engine's ``Urls`` port, from the routes of ``idp.views``."""

    def choose(self, journey_id: str, error: str | None = None) -> str:
        return url_for("login.choose", tx=journey_id, error=error)

    def begin(self, key: str, journey_id: str) -> str:
        return url_for("login.begin", key=key, tx=journey_id)

    def step(self, key: str, step: str, journey_id: str) -> str:
        return url_for("login.step", key=key, step=step, tx=journey_id)

    def key_return(self, key: str) -> str:
        return services().settings.base_url + url_for("login.key_return", key=key)

    def resume(self, journey_id: str) -> str:
        return url_for("saml.resume", tx=journey_id)
