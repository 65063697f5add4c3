"""Single logout across the portals of a session (SAML profiles §4.4) that never
gets stuck on one portal.

A logout starts from a portal's signed ``LogoutRequest`` or from the citizen on
Sésame's own page.  The SSO session ends at once; then every other portal of the
session is told, each on its own so that one that is down, hangs or refuses
cannot stop the others:

* **back channel** (SOAP, bindings §3.2) for every portal whose metadata offers
  it: Sésame calls them itself, all at once, each with
  ``[logout] back_channel_timeout_seconds``;
* **front channel** for the others: Sésame's "Déconnexion en cours" page holds
  one hidden frame per portal (``/saml/slo/frame``), each carrying its own signed
  ``LogoutRequest`` through the browser; a portal's ``LogoutResponse`` comes
  back to ``/saml/slo`` inside its frame and is recorded.  The page waits until
  every frame answered or ``[logout] front_channel_timeout_seconds`` passed.

Then ``finish``: the portal that asked gets its ``LogoutResponse`` —
``Success`` only when every portal confirmed, with ``PartialLogout`` under it
otherwise (SAML core §3.7.3.2) — or the citizen sees the logged-out page naming
the portals that could not be reached.

The run lives in the state store (``slo:<id>``), each frame's answer under its
own key written once (``add``), so any node can serve any step and answers
arriving together never overwrite each other.
"""
from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

from idp import errors
from idp.saml.bindings import BINDING_POST, BINDING_REDIRECT, BINDING_SOAP, encode_post, encode_redirect
from idp.saml.logout import (STATUS_PARTIAL_LOGOUT, LogoutAnswer, build_logout_request, build_logout_response,
                             logout_endpoint, read_logout_request, read_logout_response)
from idp.saml.response import STATUS_SUCCESS
from idp.saml.soap import SoapFailed, SoapTransport, UrllibTransport, envelope, unwrap
from idp.saml.sso import PostForm
from keys.redirect import sign_query

RUN = "slo:"
SENT = "slo-sent:"      # our LogoutRequest's ID -> the run and the portal's place in it
ANSWER = "slo-answer:"  # <run>:<place> -> "ok" | "refused", written once
RUN_TTL = 600
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"


@dataclass(frozen=True)
class Send:
    """Carry a signed message: a form to post, or a URL to redirect to."""

    form: PostForm | None = None
    url: str | None = None


@dataclass(frozen=True)
class Frames:
    """The "Déconnexion en cours" page: one frame per front-channel portal."""

    run_id: str
    frames: tuple[tuple[int, str], ...]   # (place in the run, portal's name)
    origins: tuple[str, ...]              # where the frames go (the page's frame-src)
    wait_seconds: int


@dataclass(frozen=True)
class Done:
    """Citizen-initiated logout finished; ``unreachable`` names the portals that did not confirm."""

    partial: bool
    unreachable: tuple[str, ...] = ()


def soap_endpoint(portal) -> str | None:
    for endpoint in portal.metadata.slo:
        if endpoint.binding == BINDING_SOAP:
            return endpoint.location
    return None


class SingleLogout:
    def __init__(self, services, transport: SoapTransport | None = None) -> None:
        self.s = services
        self.limits = services.sso.limits
        self.slo_urls = (f"{services.settings.base_url}/saml/slo",)
        conf = services.settings["logout"]
        self.back_timeout = float(conf["back_channel_timeout_seconds"])
        self.front_timeout = int(conf["front_channel_timeout_seconds"])
        self.transport = transport or UrllibTransport()

    # --- starting -------------------------------------------------------------
    def from_portal(self, *, binding: str, message: str, raw_query: str | None, cookie_sid: str | None,
                    relay_state: str | None) -> tuple[str, str | None]:
        """A portal's signed ``LogoutRequest``: end the session it names, open a run.

        The session is the browser's (cookie) or, when a cross-site POST carried
        no cookie, the one whose ``SessionIndex`` the portal sends — only if that
        portal took part in it, and only for the ``NameID`` that portal was
        given (else ``UnknownPrincipal``, and the session lives on).  Returns
        ``(run id, ended session id)``.
        """
        request, portal, answer = read_logout_request(
            binding=binding, message=message, raw_query=raw_query, registry=self.s.registry,
            slo_urls=self.slo_urls, now=self.s.clock.now(), **self.limits)
        self.s.sso.remember_request(issuer=request.issuer, request_id=request.request_id)
        session = self.s.sessions.get(cookie_sid) or self.s.sessions.by_index(request.session_index)
        if session is not None and portal.entity_id not in session.portals:
            session = None
        given = session.subjects.get(portal.entity_id) if session is not None else None
        if session is not None and given and request.nameid != given[0]:
            self.s.audit.record("logout", person_fedid=session.fedid, portal=portal.entity_id,
                                request_id=request.request_id, result="nameid_mismatch")
            initiator = self._initiator(portal, request, answer, relay_state, refused=True)
            return self._open(None, initiator), None
        ended = self.s.sessions.end(session.id) if session is not None else None
        self.s.audit.record("logout", person_fedid=ended.fedid if ended else None, portal=portal.entity_id,
                            request_id=request.request_id, result="ok" if ended else "no_session",
                            others=len(ended.portals) - 1 if ended else 0)
        return self._open(ended, self._initiator(portal, request, answer, relay_state)), \
            ended.id if ended else None

    @staticmethod
    def _initiator(portal, request, answer, relay_state, *, refused: bool = False) -> dict:
        return {"entity_id": portal.entity_id, "request_id": request.request_id, "relay_state": relay_state,
                "binding": answer.binding, "location": answer.location, "refused": refused}

    def from_citizen(self, *, sid: str | None) -> str | None:
        """The citizen logs out on Sésame: every portal of the session is told."""
        ended = self.s.sessions.end(sid)
        if ended is None:
            return None
        self.s.audit.record("logout", person_fedid=ended.fedid, result="ok", others=len(ended.portals))
        return self._open(ended, None)

    def _open(self, ended, initiator: dict | None) -> str:
        skip = initiator["entity_id"] if initiator else None
        participants = []
        for entity_id in ended.portals if ended else []:
            if entity_id == skip or entity_id not in ended.subjects:
                continue
            portal = self.s.registry.get(entity_id)
            channel = "none"
            if portal is not None:
                channel = "soap" if soap_endpoint(portal) else "front" if logout_endpoint(portal) else "none"
            nameid, nameid_format = ended.subjects[entity_id][:2]
            participants.append({
                "entity_id": entity_id, "name": (portal.policy.display_name or portal.name) if portal else entity_id,
                "nameid": nameid, "format": nameid_format, "channel": channel,
                # a portal that cannot be told keeps its own session: the logout is partial
                "status": "pending" if channel != "none" else "unreachable"})
        index = ended.index if ended else ""
        self._back_channel([p for p in participants if p["channel"] == "soap"], index)
        run_id = secrets.token_urlsafe(24)
        self.s.store.put(RUN + run_id, {"initiator": initiator, "participants": participants, "index": index},
                         ttl=RUN_TTL)
        return run_id

    # --- back channel ---------------------------------------------------------
    def _back_channel(self, participants: list[dict], index: str) -> None:
        """Every SOAP portal at once; each gets ``back_channel_timeout_seconds``.
        A portal that does not answer in time is ``unreachable``; its thread ends
        with its socket's timeout, the logout does not wait for it."""
        if not participants:
            return
        pool = ThreadPoolExecutor(max_workers=min(8, len(participants)), thread_name_prefix="slo-soap")
        futures = {pool.submit(self._call, p, index): p for p in participants}
        wait(futures, timeout=self.back_timeout + 1.0)
        pool.shutdown(wait=False, cancel_futures=True)
        for future, participant in futures.items():
            participant["status"] = future.result() if future.done() and not future.exception() else "unreachable"

    def _call(self, participant: dict, index: str) -> str:
        entity_id = participant["entity_id"]
        portal = self.s.registry.get(entity_id)
        location = soap_endpoint(portal)
        request_id, xml = build_logout_request(
            idp_entity_id=self.s.settings.entity_id, destination=location, sp_entity_id=entity_id,
            nameid=participant["nameid"], nameid_format=participant["format"], session_index=index,
            now=self.s.clock.now(), lifetime=RUN_TTL)
        signed = self.s.signer.sign_xml(xml, reference_id=request_id)
        try:
            message = unwrap(self.transport.post(location, envelope(signed), timeout=self.back_timeout))
            answer = read_logout_response(binding=BINDING_SOAP, message=message, raw_query=None,
                                          registry=self.s.registry, slo_urls=self.slo_urls,
                                          now=self.s.clock.now(), **self.limits)
            if answer.in_response_to != request_id or answer.issuer != entity_id:
                raise errors.MalformedRequest("LogoutResponse to another request or from another portal")
        except (SoapFailed, errors.SesameError) as exc:
            result = "unreachable" if isinstance(exc, SoapFailed) else getattr(exc, "code", "refused")
            self.s.audit.record("logout.portal", portal=entity_id, request_id=request_id, channel="soap",
                                result=result, reason=str(exc)[:200])
            return "unreachable" if isinstance(exc, SoapFailed) else "refused"
        self.s.audit.record("logout.portal", portal=entity_id, request_id=request_id, channel="soap",
                            result="ok" if answer.success else "refused")
        return "ok" if answer.success else "refused"

    # --- front channel ----------------------------------------------------------
    def _state(self, run_id: str | None) -> dict:
        state = self.s.store.get(RUN + run_id) if run_id and len(run_id) <= 64 else None
        if state is None:
            raise errors.LoginExpired("logout run unknown or expired")
        return state

    def start(self, run_id: str) -> Frames | Send | Done:
        """The browser's first step: the frames page, or at once the end when no
        portal needs the browser."""
        state = self._state(run_id)
        frames, origins = [], []
        for place, participant in enumerate(state["participants"]):
            if participant["channel"] != "front":
                continue
            frames.append((place, participant["name"]))
            endpoint = logout_endpoint(self.s.registry.get(participant["entity_id"]), prefer=BINDING_REDIRECT)
            parts = urlsplit(endpoint.location)
            origins.append(f"{parts.scheme}://{parts.netloc}")
        if not frames:
            return self.finish(run_id)
        return Frames(run_id=run_id, frames=tuple(frames), origins=tuple(dict.fromkeys(origins)),
                      wait_seconds=self.front_timeout)

    def frame(self, run_id: str | None, place: str | None) -> Send:
        """One portal's signed ``LogoutRequest``, carried by its own frame."""
        state = self._state(run_id)
        try:
            participant = state["participants"][int(place or "")]
        except (ValueError, IndexError):
            raise errors.LoginExpired("no such portal in this logout") from None
        portal = self.s.registry.get(participant["entity_id"])
        if participant["channel"] != "front" or portal is None:
            raise errors.LoginExpired("no such portal in this logout")
        endpoint = logout_endpoint(portal, prefer=BINDING_REDIRECT)
        request_id, xml = build_logout_request(
            idp_entity_id=self.s.settings.entity_id, destination=endpoint.location,
            sp_entity_id=participant["entity_id"], nameid=participant["nameid"],
            nameid_format=participant["format"], session_index=state["index"], now=self.s.clock.now(),
            lifetime=RUN_TTL)
        self.s.store.put(SENT + request_id, {"run": run_id, "portal": participant["entity_id"], "place": int(place)},
                         ttl=RUN_TTL)
        return self._send(xml, request_id, endpoint, field="SAMLRequest", relay_state=None)

    def portal_answered(self, *, binding: str, message: str, raw_query: str | None) -> bool:
        """A portal's ``LogoutResponse`` to one of our requests, in its frame: recorded once."""
        answer = read_logout_response(binding=binding, message=message, raw_query=raw_query,
                                      registry=self.s.registry, slo_urls=self.slo_urls, now=self.s.clock.now(),
                                      **self.limits)
        sent = self.s.store.pop(SENT + answer.in_response_to)
        if sent is None or sent["portal"] != answer.issuer:
            raise errors.MalformedRequest("LogoutResponse to no request of ours")
        self.s.store.add(f"{ANSWER}{sent['run']}:{sent['place']}", "ok" if answer.success else "refused",
                         ttl=RUN_TTL)
        self.s.audit.record("logout.portal", portal=answer.issuer, request_id=answer.in_response_to,
                            channel="front", result="ok" if answer.success else "refused")
        return answer.success

    def waiting(self, run_id: str | None) -> int:
        """How many frames have not answered yet (0 for a run already finished)."""
        state = self.s.store.get(RUN + run_id) if run_id and len(run_id) <= 64 else None
        if state is None:
            return 0
        return sum(1 for place, p in enumerate(state["participants"])
                   if p["channel"] == "front" and self.s.store.get(f"{ANSWER}{run_id}:{place}") is None)

    # --- the end ----------------------------------------------------------------
    def finish(self, run_id: str | None) -> Send | Done:
        """Once per run: what every portal answered, told truthfully."""
        state = self.s.store.pop(RUN + run_id) if run_id and len(run_id) <= 64 else None
        if state is None:
            raise errors.LoginExpired("logout run unknown, expired or finished")
        participants = state["participants"]
        for place, participant in enumerate(participants):
            if participant["channel"] == "front":
                participant["status"] = self.s.store.get(f"{ANSWER}{run_id}:{place}") or "unreachable"
        failed = [p for p in participants if p["status"] != "ok"]
        initiator = state["initiator"]
        self.s.audit.record("logout.finished", portal=initiator["entity_id"] if initiator else None,
                            result="partial" if failed else "ok", others=len(participants),
                            failed=",".join(p["entity_id"] for p in failed)[:500] or None)
        if initiator is None:
            return Done(partial=bool(failed), unreachable=tuple(p["name"] for p in failed))
        if initiator.get("refused"):
            status, sub_status = STATUS_REQUESTER, STATUS_UNKNOWN_PRINCIPAL
        else:
            status, sub_status = STATUS_SUCCESS, STATUS_PARTIAL_LOGOUT if failed else None
        response_id, xml = build_logout_response(
            idp_entity_id=self.s.settings.entity_id, destination=initiator["location"],
            in_response_to=initiator["request_id"], now=self.s.clock.now(), status=status, sub_status=sub_status)
        return self._send(xml, response_id, LogoutAnswer(initiator["binding"], initiator["location"]),
                          field="SAMLResponse", relay_state=initiator["relay_state"])

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
