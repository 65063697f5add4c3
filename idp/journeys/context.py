"""What a key's step is handed (``adapters.base.StepContext``): the request in
narrow form, the key's namespace of the journey, and only the ports it declared."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from adapters.base import Purpose

ATTEMPTS = "attempts:"


@dataclass(frozen=True)
class HttpInput:
    """The parts of an HTTP request the engine reads (built by the views)."""

    method: str
    form: Mapping[str, str]
    args: Mapping[str, str]
    remote_addr: str
    browser: str | None
    sid: str | None                     # the SSO session id in the cookie
    lang: str | None
    json: Mapping[str, Any] | None = None


class Ports:
    """The ports a key declared, and nothing else: asking for another is a bug."""

    def __init__(self, key: str, available: Mapping[str, Any], wanted: frozenset[str]) -> None:
        self._key = key
        self._ports = {name: available[name] for name in wanted}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_ports"][name]
        except KeyError:
            raise AttributeError(f"key {self.__dict__['_key']} did not declare the port {name!r}") from None


@dataclass(frozen=True)
class JourneyAttempts:
    """An attempt counter of one journey and key, reserved before the check."""

    store: Any
    name: str
    ttl: int

    def reserve(self, limit: int) -> bool:
        return self.store.incr(self.name, ttl=self.ttl) <= limit


@dataclass
class KeyContext:
    method: str
    form: Mapping[str, str]
    args: Mapping[str, str]
    json: Mapping[str, Any] | None
    state: dict
    ports: Ports
    remote_addr: str
    journey_id: str
    key: str
    purpose: Purpose
    person_fedid: str | None
    lang: str | None
    portal: str | None          # the entity ID of the portal the journey answers, for audit rows
    request_id: str | None      # its AuthnRequest ID
    min_level: int              # what the journey must reach, for a key that asks upstream for it (eIDAS)
    force_authn: bool           # the portal asked for a new authentication
    _step_url: Callable[[str], str]
    _return_url: Callable[[], str]
    _new_state: Callable[[], str]
    _store: Any
    _ttl: int

    def url_for_step(self, step: str) -> str:
        return self._step_url(step)

    def return_url(self) -> str:
        return self._return_url()

    def new_return_state(self) -> str:
        return self._new_state()

    def attempts(self, name: str) -> JourneyAttempts:
        return JourneyAttempts(self._store, f"{ATTEMPTS}{self.journey_id}:{self.key}:{name}", self._ttl)
