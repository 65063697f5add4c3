"""The flow engine (DESIGN.md §8.2): the only place that turns a request decision
or an adapter's outcome into HTTP.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, request, session, url_for

from adapters.base import Challenge, Failure, Redirect, Success
from idp import errors
from idp.messages import error_message
from idp.saml.single_logout import Done
from idp.saml.sso import PostForm
from idp.journeys.transactions import LoginTransaction

log = logging.getLogger("sesame.flow")


def services():
    return current_app.extensions["sesame"]


def autopost(form: PostForm):
    """The page that posts a response to the portal (SAML bindings §3.5.4)."""
    parts = urlsplit(form.action)
    g.form_targets = [f"{parts.scheme}://{parts.netloc}"]
    return render_template("autopost.html", form=form)


def logout_step(run_id: str | None):
    """The browser's next hop of a single-logout run (``idp.saml.single_logout``)."""
    step = services().logout.next(run_id)
    if isinstance(step, Done):
        return render_template("logged_out.html", partial=step.partial)
    return autopost(step.form) if step.form is not None else redirect(step.url, code=303)


def session_language() -> str | None:
    return session.get("lang")


def answer(tx: LoginTransaction, portal, sso_session, person) -> object:
    """Post the signed response for this transaction, and close it."""
    s = services()
    if not s.transactions.finish(tx):
        raise errors.LoginExpired("transaction already answered")
    form = s.sso.respond(request=tx.request, portal=portal, session=sso_session, person=person,
                         lang=session_language() or tx.lang, relay_state=tx.relay_state)
    return autopost(form)


def answer_error(tx: LoginTransaction, portal, error: errors.SesameError):
    s = services()
    s.transactions.finish(tx)
    return autopost(s.sso.respond_error(request=tx.request, portal=portal, error=error,
                                        relay_state=tx.relay_state))


@dataclass
class StepContext:
    """What an adapter step is handed (``adapters.base.StepContext``)."""

    method: str
    form: dict
    args: dict
    state: dict
    services: object
    remote_addr: str
    transaction_id: str
    key: str
    lang: str | None = None

    def url_for_step(self, step: str) -> str:
        return url_for("login.step", key=self.key, step=step, tx=self.transaction_id)


def step_context(tx: LoginTransaction, key: str) -> StepContext:
    return StepContext(method=request.method, form=request.form.to_dict(), args=request.args.to_dict(),
                       state=tx.state_for(key), services=services(), remote_addr=request.remote_addr or "",
                       transaction_id=tx.id, key=key, lang=session_language())


def run_outcome(outcome, *, tx: LoginTransaction, key: str, adapter):
    """Turn what an adapter step returned into a page, a redirect or the response."""
    s = services()
    if isinstance(outcome, Success):
        return login_succeeded(tx, outcome.result)
    s.transactions.save(tx)
    if isinstance(outcome, Challenge):
        message = error_message(outcome.error, dict(outcome.values)) if outcome.error else None
        return render_template(outcome.template, tx=tx, key=key, adapter=adapter, error=message,
                               error_code=outcome.error, **outcome.values), outcome.status
    if isinstance(outcome, Redirect):
        return redirect(outcome.url, code=303)
    if isinstance(outcome, Failure):
        return redirect(url_for("login.choose", tx=tx.id, error=outcome.code), code=303)
    raise TypeError(f"adapter {key} returned {outcome!r}")


def login_succeeded(tx: LoginTransaction, result):
    """A new session (new id) at the level reached, then the portal's response."""
    s = services()
    portal = s.registry.get(tx.request.issuer)
    if portal is None:
        raise errors.UnknownPortal("portal removed during login")
    person = s.people.get(result.person_id)
    if person is None:
        raise errors.LoginExpired("person removed during login")
    sso_session = s.sessions.start(previous=session.get("sid"), person_id=person.id, fedid=person.fedid,
                                   key=result.key, level=result.level, authn_instant=result.authn_instant)
    session["sid"] = sso_session.id
    lang = session_language()
    if lang:
        s.people.set_pref_language(result.person_id, lang)
    s.audit.record("login.success", person_fedid=sso_session.fedid, portal=portal.entity_id, key=result.key,
                   level=result.level, request_id=tx.request.request_id, remote_addr=request.remote_addr)
    return answer(tx, portal, sso_session, person)
