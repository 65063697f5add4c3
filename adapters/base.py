"""The one interface every digital key implements (DESIGN.md §6, §8.1-8.2).

Shaped after Keycloak's Authenticator SPI: ``begin`` shows the first step,
``action`` handles every later step (a form post, a redirect back from an
OpenID Connect provider, a card's signed challenge, an upstream SAML node's
response).  Steps return *outcomes*; only the flow engine in ``idp.views.flow``
turns an outcome into HTTP.  Adapters never touch ``flask.session``: their
state lives in their own namespace of the login transaction (``ctx.state``).
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol


class Group(str, enum.Enum):
    """Login-page groups, as citizens know them from the CSAM page."""

    EID = "eid"                      # with the eID or a digital identity
    SECURITY_CODE = "security_code"  # with a security code and username + password
    PASSWORD = "password"            # with username + password
    EUROPEAN = "european"            # European authentication


GROUP_ORDER = (Group.EID, Group.SECURITY_CODE, Group.PASSWORD, Group.EUROPEAN)


@dataclass(frozen=True)
class AuthResult:
    """What an adapter proved: the single result handed to the session."""

    person_id: int        # Person row id
    key: str              # adapter id, also the ``amr`` value
    level: int            # level of assurance reached
    authn_instant: float  # epoch seconds
    attributes: Mapping[str, str] = field(default_factory=dict)  # identity attributes learned


# --- outcomes -------------------------------------------------------------------
@dataclass(frozen=True)
class Success:
    result: AuthResult


@dataclass(frozen=True)
class Challenge:
    """Show a page of this key's (``template``) and wait for the next step.

    ``error`` is an error code (a message key in ``idp.messages``), or None.
    """

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    status: int = 200


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Failure:
    """The attempt is over; back to the key choice with this error code."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)


Outcome = Success | Challenge | Redirect | Failure


# --- what an adapter is handed -------------------------------------------------
class StepContext(Protocol):
    """The narrow view of a request an adapter step gets (see ``idp.views.flow``)."""

    method: str
    form: Mapping[str, str]
    args: Mapping[str, str]
    state: dict            # this adapter's namespace in the login transaction
    services: Any          # ``idp.app.services.Services``: people, store, clock, audit
    remote_addr: str
    transaction_id: str

    def url_for_step(self, step: str) -> str: ...


class Adapter(ABC):
    """One digital key.  Subclasses set the class attributes and the steps."""

    id: str
    level: int
    group: Group
    needs_activation: bool = False

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = dict(settings or {})
        if "level" in self.settings:
            self.level = int(self.settings["level"])

    @abstractmethod
    def begin(self, ctx: StepContext) -> Outcome:
        """First step, when the citizen picks this key."""

    @abstractmethod
    def action(self, ctx: StepContext, step: str) -> Outcome:
        """Every later step: ``/login/<id>/<step>``, GET or POST."""

    def configured_for(self, person_id: int, services: Any) -> bool:
        """Whether this person has this key activated (Keycloak ``configuredFor``)."""
        return True
