"""The journey engine (DESIGN.md §1, §6): the one owner of the path of a login.

    start → key choice → key steps → validate the result → claim the journey
    once → resolve the identity → start or raise the SSO session → answer

Every purpose goes this way: answering a portal's request, logging in to
Sésame's own pages, stepping up, activating a key.  Keys (``adapters``) only
run their steps and return outcomes; the views only translate HTTP to
``HttpInput`` and the engine's answers (``idp.journeys.answers``) back.  No
Flask here: URLs come from the ``urls`` port the views hand in.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Protocol

from adapters.base import Challenge, Document, Failure, Json, PublicContext, Purpose, Redirect, Success
from idp import errors
from idp.journeys.answers import Answer, DocumentAnswer, Go, JsonAnswer, Page, PostToPortal
from idp.journeys.context import HttpInput, KeyContext, Ports
from idp.journeys.journey import Journey, PortalRequest, Requirement
from idp.journeys.validation import refusal
from idp.sessions.sso_session import Login

log = logging.getLogger("sesame.journeys")


class Urls(Protocol):
    """The URLs the engine hands out (built by the views, which know the routes)."""

    def choose(self, journey_id: str, error: str | None = None) -> str: ...
    def begin(self, key: str, journey_id: str) -> str: ...
    def step(self, key: str, step: str, journey_id: str) -> str: ...
    def key_return(self, key: str) -> str: ...
    def resume(self, journey_id: str) -> str: ...


class Engine:
    def __init__(self, services, urls: Urls) -> None:
        self.s = services
        self.urls = urls

    # --- starting ---------------------------------------------------------------
    def portal_request(self, *, request, portal, relay_state: str | None, http: HttpInput) -> Answer:
        """A checked ``AuthnRequest``: answered at once from the SSO session, refused
        with a SAML status, or a new journey at the key choice."""
        s = self.s
        sso_session = s.sessions.get(http.sid)
        try:
            decision = s.sso.decide(request=request, portal=portal, session=sso_session)
        except errors.SesameError as exc:
            if exc.saml_status is None:
                raise
            log.info("answering %s to %s", exc.code, portal.entity_id)
            return PostToPortal(s.sso.respond_error(request=request, portal=portal, error=exc,
                                                    relay_state=relay_state))
        if decision.login is not None:
            person = s.people.get(sso_session.person_id)
            if person is not None:
                return PostToPortal(s.sso.respond(request=request, portal=portal, session=sso_session,
                                                  person=person, login=decision.login, lang=http.lang,
                                                  relay_state=relay_state, reused=True))
        step_up = self._step_up(sso_session, request=request, min_level=decision.min_level)
        journey = s.journeys.create(dict(
            browser=http.browser or "", purpose=Purpose.PORTAL, keys=decision.keys, lang=http.lang,
            requirement=Requirement(min_level=decision.min_level, context_refs=request.context_refs,
                                    comparison=request.comparison, force_authn=request.force_authn,
                                    is_passive=request.is_passive),
            # A step-up proves the same person again: the session (and its portals) is raised, never swapped.
            step_up=step_up, person_fedid=sso_session.fedid if step_up else None,
            portal=PortalRequest(entity_id=portal.entity_id,
                                 display_name=portal.policy.display_name or portal.name,
                                 request=request, relay_state=relay_state)))
        return Go(self.urls.choose(journey.id))

    def _step_up(self, sso_session, *, request, min_level: int) -> str | None:
        """Why an SSO session does not answer this request: ``"level"`` when none of
        its logins is strong enough for it, ``"key"`` when one is but with a key the
        portal does not accept; None without a session, or for a ``ForceAuthn`` (a
        new login the portal asked for, not a step-up)."""
        if sso_session is None or request.force_authn:
            return None
        strong_enough = sso_session.best_login(keys=list(self.s.adapters), min_level=min_level,
                                               requirement=self.s.sso.requirement(request))
        return "level" if strong_enough is None else "key"

    def park(self, *, request, portal, relay_state: str | None) -> Answer:
        """A cross-site POST carries no SameSite=Lax cookie: keep the request in a
        journey bound to no browser, resumed by a top-level GET that has it."""
        journey = self.s.journeys.create(dict(
            browser="", purpose=Purpose.PORTAL, keys=[], requirement=Requirement(), parked=True,
            portal=PortalRequest(entity_id=portal.entity_id, display_name=portal.name, request=request,
                                 relay_state=relay_state)))
        return Go(self.urls.resume(journey.id))

    def resume(self, journey_id: str | None, http: HttpInput) -> Answer:
        journey = self._load(journey_id, http, bind=True)
        if not journey.parked or journey.portal is None:
            raise errors.LoginExpired("not a parked request")  # a login in progress is not resumed (ended)
        if not self.s.journeys.finish(journey):
            raise errors.LoginExpired("parked request already resumed")
        portal = self._portal(journey)
        return self.portal_request(request=journey.portal.request, portal=portal,
                                   relay_state=journey.portal.relay_state, http=http)

    def sesame_login(self, *, done_url: str, min_level: int, http: HttpInput) -> Answer:
        """Log in to Sésame's own pages, or step up when a session exists: back to ``done_url``."""
        keys = [k for k, a in self.s.adapters.items() if a.levels[1] >= min_level]
        if not keys:
            raise errors.NoAcceptableKey(f"no key reaches level {min_level}")
        person = self._session_person(http)
        journey = self.s.journeys.create(dict(
            browser=http.browser or "", purpose=Purpose.STEP_UP if person else Purpose.SESAME, keys=keys,
            requirement=Requirement(min_level=min_level, force_authn=True), done_url=done_url,
            person_fedid=person.fedid if person else None, lang=http.lang))
        return Go(self.urls.choose(journey.id))

    def activation(self, *, key: str, done_url: str, http: HttpInput, granted_fedid: str | None = None) -> Answer:
        """Activate one key, then back to ``done_url`` (a page of Sésame's).

        The person is the SSO session's, at ``[account] activation_level``; or
        ``granted_fedid``, a person whose activation code the caller has just
        checked (a registration office's): that journey starts no session.
        """
        adapter = self.s.adapters.get(key)
        if adapter is None:
            raise errors.UnknownKey(f"no key {key[:40]!r}")
        if not adapter.needs_activation or not adapter.has_activation_steps:
            raise errors.KeyNotAllowed(f"{key} has no activation of its own")
        if granted_fedid is not None:
            journey = self.s.journeys.create(dict(
                browser=http.browser or "", purpose=Purpose.ACTIVATE, keys=[key], key=key,
                requirement=Requirement(), done_url=done_url, person_fedid=granted_fedid, lang=http.lang,
                granted=True))
            return Go(self.urls.begin(key, journey.id))
        sso_session = self.s.sessions.get(http.sid)
        person = self.s.people.get(sso_session.person_id) if sso_session else None
        needed = int(self.s.settings["account"]["activation_level"])
        if person is None or sso_session.level < needed:
            # Activation proves the person anew: only a strong login (eID, itsme) may add a key.
            self.s.audit.record("key.activation_refused", result="level_too_low", key=key,
                                person_fedid=person.fedid if person else None,
                                level=sso_session.level if sso_session else None, remote_addr=http.remote_addr)
            raise errors.ActivationLevel(f"activating {key} needs a session at level {needed}")
        journey = self.s.journeys.create(dict(
            browser=http.browser or "", purpose=Purpose.ACTIVATE, keys=[key], key=key,
            requirement=Requirement(), done_url=done_url, person_fedid=person.fedid if person else None,
            lang=http.lang))
        return Go(self.urls.begin(key, journey.id))

    # --- the key choice -----------------------------------------------------------
    def offered_keys(self, journey: Journey) -> list[str]:
        """The journey's keys, less those that need a known person and are not set up for them."""
        adapters = self.s.adapters
        return [key for key in journey.keys if key in adapters and self._offers(journey, adapters[key])]

    def _offers(self, journey: Journey, adapter) -> bool:
        if journey.person_fedid and adapter.requires_user:
            return adapter.configured_for(journey.person_fedid, self.ports_for(adapter))
        return True

    def activatable_keys(self, person_fedid: str | None) -> list[str]:
        """Keys this person could activate now (activation steps, not yet set up)."""
        if person_fedid is None:
            return []
        return [key for key, a in self.s.adapters.items()
                if a.needs_activation and a.has_activation_steps
                and not a.configured_for(person_fedid, self.ports_for(a))]

    def choose(self, journey_id: str | None, http: HttpInput, error: str | None) -> Page:
        journey = self._load(journey_id, http)
        if journey.purpose is Purpose.ACTIVATE:
            raise errors.KeyNotAllowed("an activation journey has no key choice")
        notice = journey.notice or {}
        params = notice.get("params", {}) if error and notice.get("code") == error else {}
        return Page("login/choose.html", {"journey": journey, "keys": self.offered_keys(journey),
                                          "error_code": error, "error_params": params})

    # --- a key's steps -------------------------------------------------------------
    def begin(self, journey_id: str | None, key: str, http: HttpInput) -> Answer:
        journey = self._load(journey_id, http)
        adapter = self._adapter(journey, key)
        ctx = self._context(journey, key, adapter, http)
        if journey.purpose is Purpose.ACTIVATE:
            outcome = adapter.activation_begin(ctx)
            if outcome is None:
                raise errors.KeyNotAllowed(f"{key} has no activation steps")
        else:
            outcome = adapter.begin(ctx)
        return self._outcome(journey, key, adapter, outcome, http)

    def step(self, journey_id: str | None, key: str, step: str, http: HttpInput) -> Answer:
        journey = self._load(journey_id, http)
        adapter = self._adapter(journey, key)
        ctx = self._context(journey, key, adapter, http)
        if journey.purpose is Purpose.ACTIVATE:
            outcome = adapter.activation_action(ctx, step)
        else:
            outcome = adapter.action(ctx, step)
        return self._outcome(journey, key, adapter, outcome, http)

    def key_return(self, key: str, params: Mapping[str, str], http: HttpInput) -> Answer:
        """A return from outside at the key's fixed endpoint: the journey comes from
        the signed single-use state, and must belong to this browser."""
        adapter = self.s.adapters.get(key)
        if adapter is None or adapter.return_state_param is None:
            raise errors.UnknownKey(f"no key {key[:40]!r} that returns from outside")
        try:
            journey_id = self.s.returns.redeem(params.get(adapter.return_state_param), key=key)
            journey = self.s.journeys.load(journey_id, browser=http.browser)
        except (errors.ReturnRefused, errors.LoginExpired) as exc:  # audited here, with the key
            self.s.audit.record("login.return_refused", result=exc.code, key=key, remote_addr=http.remote_addr,
                                reason=exc.detail[:200])
            raise
        adapter = self._adapter(journey, key)
        outcome = adapter.callback(self._context(journey, key, adapter, http), params)
        return self._outcome(journey, key, adapter, outcome, http)

    def cancel(self, journey_id: str | None, http: HttpInput) -> Answer:
        """The citizen gives up: a portal hears ``AuthnFailed``; a Sésame page gets them back."""
        journey = self._load(journey_id, http)
        if not self.s.journeys.finish(journey):
            raise errors.LoginExpired("journey finished meanwhile")
        if journey.portal is None:
            self.s.audit.record("login.cancelled", purpose=journey.purpose.value)
            return Go(journey.done_url or "/")
        portal = self._portal(journey)
        request = journey.portal.request
        self.s.audit.record("login.cancelled", portal=portal.entity_id, request_id=request.request_id)
        return PostToPortal(self.s.sso.respond_error(request=request, portal=portal,
                                                     error=errors.Cancelled("cancelled by the citizen"),
                                                     relay_state=journey.portal.relay_state))

    def public(self, key: str, name: str) -> JsonAnswer | DocumentAnswer:
        adapter = self.s.adapters.get(key)
        endpoint = adapter.public_endpoints().get(name) if adapter else None
        if endpoint is None:
            raise errors.NotFound(f"no public endpoint {key[:40]}/{name[:40]}")
        answer = endpoint(PublicContext(ports=self.ports_for(adapter), return_url=self.urls.key_return(key)))
        if isinstance(answer, Document):
            return DocumentAnswer(answer.body, answer.content_type)
        return JsonAnswer(dict(answer.data), answer.status)

    # --- outcomes -------------------------------------------------------------------
    def _outcome(self, journey: Journey, key: str, adapter, outcome, http: HttpInput) -> Answer:
        if isinstance(outcome, Success):
            return self._complete(journey, key, adapter, outcome.result, http)
        if isinstance(outcome, Failure):  # kept for the key choice, with its parameters
            journey.notice = {"code": outcome.code, "params": dict(outcome.params)}
        self.s.journeys.save(journey)  # the key's namespace, compare-and-set
        if isinstance(outcome, Challenge):
            values = {**outcome.values, "journey": journey, "key": key, "adapter": adapter,
                      "error_code": outcome.error, "error_params": dict(outcome.params)}
            return Page(outcome.template, values, outcome.status, policy=adapter.page_policy())
        if isinstance(outcome, Redirect):
            return Go(outcome.url)
        if isinstance(outcome, Json):
            return JsonAnswer(dict(outcome.data), outcome.status)
        if isinstance(outcome, Failure):
            if journey.purpose is Purpose.ACTIVATE:
                return Page("journey_failed.html", {"error_code": outcome.code, "error_params": dict(outcome.params),
                                                    "done_url": journey.done_url or "/"}, 400)
            return Go(self.urls.choose(journey.id, error=outcome.code))
        raise TypeError(f"key {key} returned {outcome!r}")

    def _complete(self, journey: Journey, key: str, adapter, result, http: HttpInput) -> Answer:
        """Validate, claim once, resolve the identity, start or raise the session, answer."""
        s = self.s
        audit = dict(key=key, level=result.level, remote_addr=http.remote_addr, portal=journey.entity_id,
                     request_id=journey.request_id)
        refused = self._refuse(journey, key, adapter, result, audit)
        if refused is not None:
            return refused
        portal = self._portal(journey) if journey.portal else None
        if not s.journeys.finish(journey):
            s.audit.record("login.refused", result="journey_already_finished", **audit)
            raise errors.LoginExpired("journey finished by a parallel request")
        try:
            person = s.identities.resolve(result, may_provision=adapter.provisions_people)
        except errors.UnknownPerson:
            s.audit.record("login.refused", result="unknown_person", **audit)
            raise
        if journey.person_fedid and person.fedid != journey.person_fedid:
            s.audit.record("login.refused", result="another_person", person_fedid=journey.person_fedid, **audit)
            raise errors.ResultRefused("the key proved another person than the journey's")
        if journey.granted:  # activated by an activation code: no session (the guide logs the citizen out)
            s.audit.record("key.activated", person_fedid=person.fedid, granted=True, **audit)
            s.notices.key_event(person.fedid, key, "activated")
            return Go(journey.done_url or "/")
        sso_session = s.sessions.start(previous=http.sid, person_id=person.id, fedid=person.fedid, key=key,
                                       level=result.level, authn_instant=result.authn_instant,
                                       authority=result.authority, attributes=dict(result.attributes))
        if http.lang:
            s.people.set_pref_language(person.id, http.lang)
        s.audit.record("key.activated" if journey.purpose is Purpose.ACTIVATE else "login.success",
                       person_fedid=person.fedid, **audit)
        if journey.purpose is Purpose.ACTIVATE:
            s.notices.key_event(person.fedid, key, "activated")
        if portal is None:
            return Go(journey.done_url or "/", new_sid=sso_session.id)
        login = Login(key, result.level, result.authn_instant, result.authority)
        form = s.sso.respond(request=journey.portal.request, portal=portal, session=sso_session, person=person,
                             login=login, lang=http.lang or journey.lang, relay_state=journey.portal.relay_state)
        return PostToPortal(form, new_sid=sso_session.id)

    def _refuse(self, journey: Journey, key: str, adapter, result, audit: dict) -> Answer | None:
        """None when the result may complete the journey; else audited, and the
        citizen back at the key choice (the journey stays open for another key)."""
        requirement = None
        if journey.portal is not None:
            requirement = self.s.levels.requirement(list(journey.requirement.context_refs),
                                                    journey.requirement.comparison)
        reason = refusal(result=result, key=key, acceptable=journey.keys, key_levels=adapter.levels,
                         min_level=journey.requirement.min_level, requirement=requirement)
        if reason is None:
            return None
        self.s.audit.record("login.refused", result=reason, **audit)
        self.s.journeys.save(journey)
        if journey.purpose is Purpose.ACTIVATE:
            raise errors.ResultRefused(reason)
        code = "level_not_reached" if reason.startswith("level") else "result_refused"
        return Go(self.urls.choose(journey.id, error=code))

    # --- helpers ------------------------------------------------------------------------
    def _load(self, journey_id: str | None, http: HttpInput, *, bind: bool = False) -> Journey:
        """The journey of this browser; an unknown, expired, finished or foreign one is audited."""
        try:
            if bind:
                return self.s.journeys.bind(journey_id, browser=http.browser)
            return self.s.journeys.load(journey_id, browser=http.browser)
        except errors.LoginExpired as exc:
            self.s.audit.record("login.journey_refused", result=exc.code, remote_addr=http.remote_addr,
                                reason=exc.detail[:200])
            raise

    def _session_person(self, http: HttpInput):
        """The person of the browser's SSO session, or None."""
        sso_session = self.s.sessions.get(http.sid)
        return self.s.people.get(sso_session.person_id) if sso_session else None

    def _portal(self, journey: Journey):
        portal = self.s.registry.get(journey.portal.entity_id)
        if portal is None:
            raise errors.UnknownPortal("portal removed during login")
        return portal

    def _adapter(self, journey: Journey, key: str):
        adapter = self.s.adapters.get(key)
        if adapter is None:
            raise errors.UnknownKey(f"no key {key[:40]!r}")
        if key not in journey.keys or (journey.purpose is not Purpose.ACTIVATE
                                       and not self._offers(journey, adapter)):
            raise errors.KeyNotAllowed(f"{key} not acceptable for this journey")
        return adapter

    def ports_for(self, adapter) -> Ports:
        return Ports(adapter.id, self.s.ports, adapter.ports)

    def _context(self, journey: Journey, key: str, adapter, http: HttpInput) -> KeyContext:
        return KeyContext(
            method=http.method, form=http.form, args=http.args, json=http.json, state=journey.state_for(key),
            ports=self.ports_for(adapter), remote_addr=http.remote_addr, journey_id=journey.id, key=key,
            purpose=journey.purpose, person_fedid=journey.person_fedid, lang=http.lang,
            portal=journey.entity_id, request_id=journey.request_id,
            min_level=journey.requirement.min_level, force_authn=journey.requirement.force_authn,
            _step_url=lambda step: self.urls.step(key, step, journey.id),
            _return_url=lambda: self.urls.key_return(key),
            _new_state=lambda: self.s.returns.issue(journey_id=journey.id, key=key),
            _store=self.s.store, _ttl=self.s.journeys.ttl)


def key_ports(services) -> dict[str, Any]:
    """Every port a key may declare, by name (``Adapter.ports``)."""
    return {"store": services.store, "clock": services.clock, "audit": services.audit,
            "credentials": services.credentials, "people": services.contacts, "mailer": services.mailer,
            "sms": services.sms, "codes": services.codes, "sealer": services.sealer}
