"""The one contract every digital key implements (DESIGN.md §6, §8.1-8.2).

Shaped after Keycloak's Authenticator SPI: ``begin`` shows the first step,
``action`` handles every later step (a form post, a JSON call from the page's
script), ``callback`` handles a return from outside (an OpenID Connect
provider, an upstream SAML node) at the key's fixed return endpoint.  Steps
return *outcomes*; only the journey engine (``idp.journeys``) turns an outcome
into an answer, and only the views turn that into HTTP.

A key never touches Flask, the database or ``flask.session``: its state lives
in its own namespace of the journey (``ctx.state``), and it reaches the world
through the narrow *ports* it declares (``ports``), handed in by the engine.

A key proves an *identity*, never a database row: ``AuthResult.subject`` says
who (national register number, BIS number, a username of a password
credential, an upstream identifier), and the engine finds, links or
provisions the person.
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol

from adapters.settings import KeySettings, SettingsError, settings_from


class Group(str, enum.Enum):
    """Login-page groups, as citizens know them from the CSAM page."""

    EID = "eid"                      # with the eID or a digital identity
    SECURITY_CODE = "security_code"  # with a security code and username + password
    PASSWORD = "password"            # with username + password
    EUROPEAN = "european"            # European authentication


GROUP_ORDER = (Group.EID, Group.SECURITY_CODE, Group.PASSWORD, Group.EUROPEAN)


class SubjectKind(str, enum.Enum):
    NRN = "nrn"              # national register number (11 digits)
    BIS = "bis"              # BIS number, same shape, given by a registration office
    USERNAME = "username"    # the username of a credential; ``issuer`` is the credential's key id
    UPSTREAM = "upstream"    # an identifier given by an upstream provider; ``issuer`` names it
    FEDID = "fedid"          # Sésame's own stable identifier (a person already known to the journey)


@dataclass(frozen=True)
class Subject:
    """Who a key proved: a kind, a value, and who vouches for the value."""

    kind: SubjectKind
    value: str
    issuer: str = ""

    def to_mapping(self) -> dict[str, str]:
        return {"kind": self.kind.value, "value": self.value, "issuer": self.issuer}


# Attributes a key may learn about a person (the engine keeps them for portals).
# eidas_identifier: the eIDAS PersonIdentifier (``XX/BE/…``) a European login proved.
LEARNABLE = ("surname", "given_name", "birth_date", "mail", "nrn", "eidas_identifier")


@dataclass(frozen=True)
class AuthResult:
    """What a key proved: the single result handed to the engine.

    ``level`` is what this login reached (within the key's ``levels``);
    ``authority`` who authenticated (``"sesame"`` for keys checked here, the
    issuer of an upstream assertion otherwise); ``attributes`` what the key
    learned, with names from ``LEARNABLE`` (ISO dates for ``birth_date``).
    """

    subject: Subject
    key: str
    level: int
    authn_instant: float
    authority: str = "sesame"
    attributes: Mapping[str, str] = field(default_factory=dict)


# --- outcomes -------------------------------------------------------------------
@dataclass(frozen=True)
class Success:
    result: AuthResult


@dataclass(frozen=True)
class Challenge:
    """Show a page of this key's (``template``) and wait for the next step.

    ``error`` is an error code (a message key of the key's ``messages`` or of
    ``idp.messages``), or None.
    """

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    status: int = 200
    params: Mapping[str, Any] = field(default_factory=dict)  # placeholders of the error message


@dataclass(frozen=True)
class Redirect:
    """Send the browser elsewhere (an external provider, another step)."""

    url: str


@dataclass(frozen=True)
class Json:
    """The answer to a step called from the page's script (``fetch``)."""

    data: Mapping[str, Any]
    status: int = 200


@dataclass(frozen=True)
class Document:
    """A public endpoint's answer that is not JSON (signed SAML metadata)."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class PublicContext:
    """What a public endpoint may use: the key's declared ports and its fixed
    return URL (absolute), which names it to the outside (an entity ID, a redirect URI)."""

    ports: Any
    return_url: str


@dataclass(frozen=True)
class Failure:
    """The attempt is over; back to the key choice with this error code."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)


Outcome = Success | Challenge | Redirect | Json | Failure


class Purpose(str, enum.Enum):
    """Why a journey runs (``idp.journeys.journey.Journey.purpose``)."""

    PORTAL = "portal"        # answer a portal's checked AuthnRequest
    SESAME = "sesame"        # log in to Sésame's own pages
    ACTIVATE = "activate"    # activate one key, then back to the page that asked
    STEP_UP = "step_up"      # raise the SSO session's level, then back


# --- what a key is handed ------------------------------------------------------
class AttemptCounter(Protocol):
    def reserve(self, limit: int) -> bool:
        """Count one attempt atomically *before* checking it; False once ``limit`` is used."""


class StepContext(Protocol):
    """The narrow view of a request a key's step gets (built by ``idp.journeys``)."""

    method: str
    form: Mapping[str, str]
    args: Mapping[str, str]
    json: Mapping[str, Any] | None   # the body of a step called from the page's script
    state: dict                      # this key's namespace in the journey
    ports: Any                       # only the ports the key declared (``Adapter.ports``)
    remote_addr: str
    journey_id: str
    key: str
    purpose: Purpose
    person_fedid: str | None         # the person the journey is for, when already known
    lang: str | None
    portal: str | None               # the portal's entity ID (audit rows), None without a portal
    request_id: str | None           # its AuthnRequest ID

    def url_for_step(self, step: str) -> str: ...

    def return_url(self) -> str:
        """This key's fixed return endpoint (``/login/<key>/return``), absolute."""

    def new_return_state(self) -> str:
        """A signed, single-use, short-lived value naming this journey, for the
        OIDC ``state`` or the SAML ``RelayState`` of a trip outside."""

    def attempts(self, name: str) -> AttemptCounter:
        """An atomic attempt counter of this journey and key (one-time codes, PINs)."""


class Adapter(ABC):
    """One digital key.  Subclasses set the class attributes and the steps.

    ``levels`` is the range of levels the key can reach (a fixed key has one);
    ``level`` the one it states in its own context class and on the login page.
    ``Settings`` is the key's typed settings class: configuration is checked
    against it at start, and an unknown or ill-typed setting fails there.
    """

    id: ClassVar[str]
    group: ClassVar[Group]
    level: int
    levels: tuple[int, int]
    needs_activation: ClassVar[bool] = False
    requires_user: ClassVar[bool] = False   # needs the person known before it runs (step-up, activation)
    provisions_people: ClassVar[bool] = False  # may the engine create a person it proved and does not know
    Settings: ClassVar[type[KeySettings]] = KeySettings
    ports: ClassVar[frozenset[str]] = frozenset()          # e.g. {"credentials", "store", "mailer"}
    template_folder: ClassVar[Path | None] = None          # the key's own templates, next to it
    static_folder: ClassVar[Path | None] = None            # served at /login/<id>/static/<file>
    return_state_param: ClassVar[str | None] = None        # "state" (OIDC), "RelayState" (SAML)
    messages: ClassVar[Mapping[str, Any]] = {}             # error code -> citizen's text (lazy gettext)

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = settings_from(self.Settings, settings or {}, key=self.id)
        nominal = self.settings.level if self.settings.level is not None else type(self).level
        self.level = int(nominal)
        low, high = self.settings.levels or getattr(type(self), "levels", (nominal, nominal))
        if not low <= self.level <= high:
            raise SettingsError(f"[keys.{self.id}] level {self.level} is outside levels {[low, high]}")
        self.levels = (int(low), int(high))

    @property
    def context_class(self) -> str | None:
        """This key's own ``AuthnContextClassRef`` (configuration ``context_class``), if any."""
        return self.settings.context_class or None

    # --- login ------------------------------------------------------------------
    @abstractmethod
    def begin(self, ctx: StepContext) -> Outcome:
        """First step, when the citizen picks this key."""

    @abstractmethod
    def action(self, ctx: StepContext, step: str) -> Outcome:
        """Every later step: ``/login/<id>/<step>``, GET or POST."""

    def callback(self, ctx: StepContext, params: Mapping[str, str]) -> Outcome:
        """A return from outside at ``/login/<id>/return`` (GET or POST), its
        journey already found from the signed state.  Keys that never leave
        Sésame keep this default."""
        return Failure("unexpected_return")

    # --- activation and self-service (empty for keys that need none) ----------
    @property
    def has_activation_steps(self) -> bool:
        return type(self).activation_begin is not Adapter.activation_begin

    def activation_begin(self, ctx: StepContext) -> Outcome | None:
        """First activation step; None: this key has no activation of its own."""
        return None

    def activation_action(self, ctx: StepContext, step: str) -> Outcome:
        return Failure("unknown_step")

    def self_service(self) -> tuple[str, ...]:
        """Names of the self-service actions this key offers ("Mes clés numériques")."""
        return ()

    # An active key whose activation may run again to replace it (a new token card).
    renewable: ClassVar[bool] = False

    def status_note(self, record) -> str | None:
        """A short text beside the key's status in "Mes clés numériques" (codes left
        on a card), given the person's credential of this key; None: nothing to say."""
        return None

    # --- what the engine asks ---------------------------------------------------
    def configured_for(self, person_fedid: str, ports: Any) -> bool:
        """Whether this person has this key ready to use (Keycloak ``configuredFor``)."""
        return True

    def page_policy(self) -> Mapping[str, tuple[str, ...]]:
        """Extra Content-Security-Policy sources on this key's pages only, by
        directive (e.g. ``{"connect-src": ("http://127.0.0.1:24727",)}``)."""
        return {}

    def public_endpoints(self) -> Mapping[str, Any]:
        """Public GET endpoints under ``/keys/<id>/<name>``: name -> callable taking a
        ``PublicContext`` and returning a ``Json`` (a JWKS an OpenID provider fetches)
        or a ``Document`` (signed SAML metadata an eIDAS node fetches)."""
        return {}
