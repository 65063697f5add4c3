"""Single logout across the portals of a session (SAML profiles §4.4, front channel).

A logout starts from a portal's signed ``LogoutRequest`` or from the citizen on
Sésame's own page.  The SSO session ends at once; then the browser carries a
signed ``LogoutRequest`` to each other portal of the session, one after the
other, each answering with a signed ``LogoutResponse`` at ``/saml/slo``; last,
the portal that asked gets its ``LogoutResponse`` (``PartialLogout`` when a
portal could not be logged out), or the citizen sees the logged-out page.

The run lives in the state store (``slo:<id>``), so any node can carry it on.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from idp import errors
from idp.saml.bindings import BINDING_POST, BINDING_REDIRECT, encode_post, encode_redirect
from idp.saml.logout import (STATUS_PARTIAL_LOGOUT, LogoutAnswer, build_logout_request, build_logout_response,
                             logout_endpoint, read_logout_request, read_logout_response)
from idp.saml.response import STATUS_SUCCESS
from idp.saml.sso import PostForm
from keys.redirect import sign_query

RUN = "slo:"
SENT = "slo-sent:"
RUN_TTL = 600


@dataclass(frozen=True)
class Send:
    """Carry a signed message: a form to post, or a URL to redirect to."""

    form: PostForm | None = None
    url: str | None = None


@dataclass(frozen=True)
class Done:
    """Citizen-initiated logout finished; ``partial`` when a portal did not confirm."""

    partial: bool


class SingleLogout:
    def __init__(self, services) -> None:
        self.s = services
        self.limits = services.sso.limits
        self.slo_urls = (f"{services.settings.base_url}/saml/slo",)

    # --- starting -------------------------------------------------------------
    def from_portal(self, *, binding: str, message: str, raw_query: str | None, cookie_sid: str | None,
                    relay_state: str | None) -> tuple[str, str | None]:
        """A portal's signed ``LogoutRequest``: end the session it names, open a run.

        The session is the browser's (cookie) or, when a cross-site POST carried
        no cookie, the one whose ``SessionIndex`` the portal sends — only if that
        portal took part in it.  Returns ``(run id, ended session id)``.
        """
        request, portal, answer = read_logout_request(
            binding=binding, message=message, raw_query=raw_query, registry=self.s.registry,
            slo_urls=self.slo_urls, now=self.s.clock.now(), **self.limits)
        self.s.sso.remember_request(issuer=request.issuer, request_id=request.request_id)
        session = self.s.sessions.get(cookie_sid) or self.s.sessions.by_index(request.session_index)
        ended = self.s.sessions.end(session.id) if session and portal.entity_id in session.portals else None
        self.s.audit.record("logout", person_fedid=ended.fedid if ended else None, portal=portal.entity_id,
                            request_id=request.request_id, result="ok" if ended else "no_session",
                            others=len(ended.portals) - 1 if ended else 0)
        initiator = {"entity_id": portal.entity_id, "request_id": request.request_id, "relay_state": relay_state,
                     "binding": answer.binding, "location": answer.location}
        return self._open(ended, initiator), ended.id if ended else None

    def from_citizen(self, *, sid: str | None) -> str | None:
        """The citizen logs out on Sésame: every portal of the session is told."""
        ended = self.s.sessions.end(sid)
        if ended is None:
            return None
        self.s.audit.record("logout", person_fedid=ended.fedid, result="ok", others=len(ended.portals))
        return self._open(ended, None)

    def _open(self, ended, initiator: dict | None) -> str:
        skip = initiator["entity_id"] if initiator else None
        pending = [[p, *ended.subjects[p]] for p in ended.portals if p != skip and p in ended.subjects] \
            if ended else []
        run_id = secrets.token_urlsafe(24)
        self.s.store.put(RUN + run_id, {"initiator": initiator, "pending": pending, "partial": False,
                                        "index": ended.index if ended else ""}, ttl=RUN_TTL)
        return run_id

    # --- carrying on ----------------------------------------------------------
    def portal_answered(self, *, binding: str, message: str, raw_query: str | None) -> str:
        """A portal's ``LogoutResponse`` to one of our requests; returns the run to carry on."""
        answer = read_logout_response(binding=binding, message=message, raw_query=raw_query,
                                      registry=self.s.registry, slo_urls=self.slo_urls, now=self.s.clock.now(),
                                      **self.limits)
        sent = self.s.store.pop(SENT + answer.in_response_to)
        if sent is None or sent["portal"] != answer.issuer:
            raise errors.MalformedRequest("LogoutResponse to no request of ours")
        if not answer.success:
            self._update(sent["run"], partial=True)
        self.s.audit.record("logout.portal", portal=answer.issuer, request_id=answer.in_response_to,
                            result="ok" if answer.success else "refused")
        return sent["run"]

    def next(self, run_id: str | None) -> Send | Done:
        """The next portal's ``LogoutRequest``, else the final answer."""
        state = self.s.store.get(RUN + run_id) if run_id and len(run_id) <= 64 else None
        if state is None:
            raise errors.LoginExpired("logout run unknown or expired")
        while state["pending"]:
            entity_id, nameid, nameid_format = state["pending"].pop(0)
            portal = self.s.registry.get(entity_id)
            endpoint = logout_endpoint(portal, prefer=BINDING_REDIRECT) if portal else None
            if endpoint is None:
                state["partial"] = True  # a portal that cannot be told keeps its own session
                continue
            request_id, xml = build_logout_request(
                idp_entity_id=self.s.settings.entity_id, destination=endpoint.location, sp_entity_id=entity_id,
                nameid=nameid, nameid_format=nameid_format, session_index=state["index"],
                now=self.s.clock.now(), lifetime=RUN_TTL)
            self.s.store.put(SENT + request_id, {"run": run_id, "portal": entity_id}, ttl=RUN_TTL)
            self.s.store.put(RUN + run_id, state, ttl=RUN_TTL)
            return self._send(xml, request_id, endpoint, field="SAMLRequest", relay_state=None)
        self.s.store.delete(RUN + run_id)
        initiator = state["initiator"]
        if initiator is None:
            return Done(partial=state["partial"])
        response_id, xml = build_logout_response(
            idp_entity_id=self.s.settings.entity_id, destination=initiator["location"],
            in_response_to=initiator["request_id"], now=self.s.clock.now(),
            status=STATUS_SUCCESS, sub_status=STATUS_PARTIAL_LOGOUT if state["partial"] else None)
        return self._send(xml, response_id, LogoutAnswer(initiator["binding"], initiator["location"]),
                          field="SAMLResponse", relay_state=initiator["relay_state"])

    def _update(self, run_id: str, **changes) -> None:
        state = self.s.store.get(RUN + run_id)
        left = self.s.store.ttl(RUN + run_id)
        if state is not None and left:
            self.s.store.put(RUN + run_id, {**state, **changes}, ttl=left)

    def _send(self, xml: bytes, message_id: str, endpoint: LogoutAnswer, *, field: str,
              relay_state: str | None) -> Send:
        """Sign for the endpoint's binding: enveloped for HTTP-POST, the query for HTTP-Redirect."""
        if endpoint.binding == BINDING_POST:
            xml = self.s.signer.sign_xml(xml, reference_id=message_id)
            return Send(form=PostForm(endpoint.location, encode_post(xml), relay_state, field=field))
        params = [(field, encode_redirect(xml))]
        if relay_state:
            params.append(("RelayState", relay_state))
        params.append(("SigAlg", self.s.signer.default_algorithm))
        sep = "&" if "?" in endpoint.location else "?"
        return Send(url=f"{endpoint.location}{sep}{sign_query(params=params, signer=self.s.signer)}")
