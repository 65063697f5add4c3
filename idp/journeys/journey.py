"""The journey (DESIGN.md §6): one server-side record of what a citizen is doing.

A journey answers a portal's checked request, logs the citizen in to
Sésame's own pages, activates a key or steps up.  It holds its *purpose*, the
*requirement* (minimum level, requested classes and comparison, ``ForceAuthn``,
``IsPassive``), the portal when there is one, the acceptable keys, one
namespace per key, the person it is for when already known, and where to go
when it is done.

It lives in the state store with a short TTL under ``journey:<id>``.  Every
write is a compare-and-set against the value read (``StateStore.replace``),
so parallel posts cannot lose or bypass what another wrote, and a finished
journey is replaced by a tombstone that no write can bring back.  Its id
travels in the login URLs (``?tx=``, so two tabs can log in to two portals at
once) and is honoured only for the browser that started it.
"""
from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from typing import Any

from adapters.base import Purpose
from idp.errors import JourneyConflict, LoginExpired
from idp.saml.authn_request import AuthnRequestData

PREFIX = "journey:"
MAX_ID = 64


@dataclass(frozen=True)
class Requirement:
    """What the journey must reach: checked against every key's result."""

    min_level: int = 0
    context_refs: tuple[str, ...] = ()
    comparison: str | None = None
    force_authn: bool = False
    is_passive: bool = False

    def to_mapping(self) -> dict[str, Any]:
        return {"min_level": self.min_level, "context_refs": list(self.context_refs),
                "comparison": self.comparison, "force_authn": self.force_authn, "is_passive": self.is_passive}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "Requirement":
        return cls(min_level=int(data["min_level"]), context_refs=tuple(data["context_refs"]),
                   comparison=data["comparison"], force_authn=bool(data["force_authn"]),
                   is_passive=bool(data["is_passive"]))


@dataclass(frozen=True)
class PortalRequest:
    """The portal a journey answers: its checked request and where the answer goes."""

    entity_id: str
    display_name: str
    request: AuthnRequestData
    relay_state: str | None

    def to_mapping(self) -> dict[str, Any]:
        return {"entity_id": self.entity_id, "display_name": self.display_name,
                "request": self.request.to_mapping(), "relay_state": self.relay_state}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "PortalRequest":
        return cls(entity_id=data["entity_id"], display_name=data["display_name"],
                   request=AuthnRequestData.from_mapping(data["request"]), relay_state=data["relay_state"])


@dataclass
class Journey:
    id: str
    browser: str
    purpose: Purpose
    requirement: Requirement
    keys: list[str]
    portal: PortalRequest | None = None
    done_url: str | None = None          # a path on Sésame, for journeys without a portal
    person_fedid: str | None = None      # the person it is for, when known before the login
    key: str | None = None               # the one key of an activation journey
    lang: str | None = None
    steps: dict[str, dict] = field(default_factory=dict)   # one namespace per key
    notice: dict | None = None           # the last key failure (code, params), for the key choice
    parked: bool = False                 # a cross-site request waiting for its top-level GET
    # An activation granted by an activation code (a registration office's), not by a
    # session: it ends without starting one (the citizen then logs in with the new key).
    granted: bool = False
    # Why a portal's request met an SSO session and still asks for a login: "level" (no
    # login of the session is strong enough) or "key" (strong enough, but a key this
    # portal does not accept).  The key choice says so; the person must stay the same.
    step_up: str | None = None
    raw: dict | None = field(default=None, repr=False, compare=False)  # the value read, for compare-and-set

    def state_for(self, key: str) -> dict:
        return self.steps.setdefault(key, {})

    @property
    def entity_id(self) -> str | None:
        """The portal's entity ID, None without a portal (audit rows)."""
        return self.portal.entity_id if self.portal else None

    @property
    def request_id(self) -> str | None:
        """The portal's AuthnRequest ID, None without a portal (audit rows)."""
        return self.portal.request.request_id if self.portal else None

    def to_mapping(self) -> dict[str, Any]:
        return {"id": self.id, "browser": self.browser, "purpose": self.purpose.value,
                "requirement": self.requirement.to_mapping(), "keys": list(self.keys),
                "portal": self.portal.to_mapping() if self.portal else None, "done_url": self.done_url,
                "person_fedid": self.person_fedid, "key": self.key, "lang": self.lang,
                "steps": copy.deepcopy(self.steps), "notice": copy.deepcopy(self.notice), "parked": self.parked,
                "granted": self.granted, "step_up": self.step_up}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "Journey":
        return cls(id=data["id"], browser=data["browser"], purpose=Purpose(data["purpose"]),
                   requirement=Requirement.from_mapping(data["requirement"]), keys=list(data["keys"]),
                   portal=PortalRequest.from_mapping(data["portal"]) if data.get("portal") else None,
                   done_url=data.get("done_url"), person_fedid=data.get("person_fedid"), key=data.get("key"),
                   lang=data.get("lang"), steps=copy.deepcopy(dict(data.get("steps") or {})),
                   notice=copy.deepcopy(data.get("notice")), parked=bool(data.get("parked")),
                   granted=bool(data.get("granted")), step_up=data.get("step_up"), raw=data)


class Journeys:
    """Journeys in the state store: create, load for a browser, save, finish once."""

    def __init__(self, store, *, ttl: int) -> None:
        self.store = store
        self.ttl = ttl

    def create(self, journey_fields: dict[str, Any]) -> Journey:
        journey = Journey(id=secrets.token_urlsafe(24), **journey_fields)
        data = journey.to_mapping()
        self.store.put(PREFIX + journey.id, data, ttl=self.ttl)
        journey.raw = copy.deepcopy(data)
        return journey

    def _read(self, journey_id: str | None) -> dict:
        if not journey_id or len(journey_id) > MAX_ID:
            raise LoginExpired("no journey id")
        data = self.store.get(PREFIX + journey_id)
        if data is None:
            raise LoginExpired("journey unknown or expired")
        if data.get("finished"):
            raise LoginExpired("journey already finished")
        return data

    def load(self, journey_id: str | None, *, browser: str | None) -> Journey:
        """The journey, if it is live and belongs to this browser; else ``LoginExpired``."""
        data = self._read(journey_id)
        if not browser or not secrets.compare_digest(data["browser"], browser):
            raise LoginExpired("journey started in another browser")
        return Journey.from_mapping(data)

    def bind(self, journey_id: str | None, *, browser: str) -> Journey:
        """Bind a journey created without a browser (a cross-site POST, which
        carried no SameSite=Lax cookie) to this browser, once."""
        data = self._read(journey_id)
        if data["browser"] == "":
            journey = Journey.from_mapping(data)
            journey.browser = browser
            self.save(journey)
            return journey
        return self.load(journey_id, browser=browser)

    def save(self, journey: Journey) -> None:
        """Write back what changed, keeping the expiry, only over the value read.

        Raises ``JourneyConflict`` when another request wrote meanwhile (the
        caller's view is stale) and ``LoginExpired`` when it finished or expired.
        """
        data = journey.to_mapping()
        # Written even when unchanged: the compare-and-set is also the check
        # that the journey is still live (a step after it finished is refused).
        if not self.store.replace(PREFIX + journey.id, data, expected=journey.raw):
            now = self.store.get(PREFIX + journey.id)
            if now is None or now.get("finished"):
                raise LoginExpired("journey finished or expired meanwhile")
            raise JourneyConflict("journey changed by a parallel request")
        journey.raw = copy.deepcopy(data)

    def finish(self, journey: Journey) -> bool:
        """Claim the journey, once: True for the first caller only.

        The record becomes a tombstone until it expires, so that a return for
        a finished journey is told apart from an unknown one in the logs.
        """
        return self.store.replace(PREFIX + journey.id, {"finished": True, "id": journey.id},
                                  expected=journey.raw)
