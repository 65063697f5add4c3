"""A portal's policy: which keys, which level, what it receives, how it is answered.

DESIGN.md §1 (steps 3 and 8) and §4.  The policy is stored as JSON in
``Portal.policy``; ``policy_from_mapping`` is the only way back from JSON (or
from a CLI or configuration file) and checks every field, so a stored policy
is as trustworthy as one built in code.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metadata.errors import MetadataError

# DESIGN.md §4: the attribute profile; a portal receives only what its policy lists.
ATTRIBUTE_PROFILE: tuple[str, ...] = (
    "egovNRN", "surname", "givenName", "mail", "PrefLanguage", "fedid", "birthDate", "authenticationMethod",
    "eidasIdentifier",
)
MAX_DISPLAY_NAME = 200


class AttributeNames(enum.StrEnum):
    """How released attributes are named: ``fas`` (Sésame's FAS-style names, NameFormat
    basic), ``uri`` (standard URI names, ``urn:oid:…`` with NameFormat uri and the
    FAS name as FriendlyName, where one exists; the others keep their FAS name) or
    ``both`` (each attribute twice)."""

    FAS = "fas"
    URI = "uri"
    BOTH = "both"


class NameIdFormat(enum.StrEnum):
    """transient: a new opaque NameID per response; persistent: pairwise, stable per (person, portal);
    email: the person's e-mail address (SAML core §8.3.2), only with ``mail`` in the policy's attributes."""

    TRANSIENT = "transient"
    PERSISTENT = "persistent"
    EMAIL = "email"


class SignMode(enum.StrEnum):
    """What Sésame signs in a Response (SAML core §5, SAML profiles §4.1.3.5).

    ``metadata`` (default) follows the portal's metadata: the assertion when it
    says ``WantAssertionsSigned="true"``, otherwise the response.
    """

    ASSERTION = "assertion"
    RESPONSE = "response"
    BOTH = "both"
    METADATA = "metadata"


@dataclass(frozen=True)
class Signing:
    """The outcome of ``PortalPolicy.signing``: which elements to sign."""

    response: bool
    assertion: bool


@dataclass(frozen=True)
class PortalPolicy:
    """A portal's policy.

    ``accepted_keys`` are adapter ids; empty means every enabled key.
    ``min_level`` is a level of the configured scale (DESIGN.md §3).
    ``require_signed_requests`` demands a signed ``AuthnRequest`` even when
    the metadata does not say ``AuthnRequestsSigned="true"``.
    ``encrypt_assertions`` sends the assertion only as an ``EncryptedAssertion``
    (SAML core §2.3.4, §6) to the portal's metadata encryption key; without
    such a key the portal is answered an error, never the assertion in clear
    (checked at response time, ``idp.saml.sso``).
    """

    accepted_keys: tuple[str, ...] = ()
    min_level: int = 100
    attributes: tuple[str, ...] = ()
    nameid_format: NameIdFormat = NameIdFormat.TRANSIENT
    sign: SignMode = SignMode.METADATA
    display_name: str | None = None
    require_signed_requests: bool = False
    encrypt_assertions: bool = False
    attribute_names: AttributeNames = AttributeNames.FAS

    def signing(self, *, want_assertions_signed: bool) -> Signing:
        """Which of response and assertion to sign, given the metadata's ``WantAssertionsSigned``."""
        mode = SignMode(self.sign)
        if mode is SignMode.METADATA:
            mode = SignMode.ASSERTION if want_assertions_signed else SignMode.RESPONSE
        return Signing(
            response=mode in (SignMode.RESPONSE, SignMode.BOTH),
            assertion=mode in (SignMode.ASSERTION, SignMode.BOTH) or want_assertions_signed,
        )

    def to_mapping(self) -> dict[str, Any]:
        """The JSON-ready form, read back by ``policy_from_mapping``."""
        return {
            "accepted_keys": list(self.accepted_keys),
            "min_level": int(self.min_level),
            "attributes": list(self.attributes),
            "nameid_format": str(NameIdFormat(self.nameid_format)),
            "sign": str(SignMode(self.sign)),
            "display_name": self.display_name,
            "require_signed_requests": bool(self.require_signed_requests),
            "encrypt_assertions": bool(self.encrypt_assertions),
            "attribute_names": str(AttributeNames(self.attribute_names)),
        }


_FIELDS = frozenset(PortalPolicy.__dataclass_fields__)


def policy_from_mapping(
    d: Mapping[str, Any], *, known_keys: Iterable[str], levels: Iterable[int]
) -> PortalPolicy:
    """Build a ``PortalPolicy`` from ``d``, checking every field; missing fields take their defaults.

    Raises ``MetadataError`` naming the field and the offending value: unknown
    field, unknown key id (not in ``known_keys``), level not in ``levels``,
    attribute outside the profile, unknown NameID format or signing mode, NameID
    format ``email`` without ``mail`` among the attributes.
    """
    if not isinstance(d, Mapping):
        raise MetadataError(f"policy must be a mapping, not {type(d).__name__}")
    unknown = sorted(set(d) - _FIELDS)
    if unknown:
        raise MetadataError(
            f"unknown policy field(s): {', '.join(map(repr, unknown))}; known: {', '.join(sorted(_FIELDS))}")
    defaults = PortalPolicy()
    known = frozenset(known_keys)
    scale = sorted(set(levels))
    keys = _strings(d.get("accepted_keys", ()), field="accepted_keys")
    for key in keys:
        if key not in known:
            raise MetadataError(f"policy accepted_keys: unknown key id {key!r}; known: {', '.join(sorted(known))}")
    attributes = _strings(d.get("attributes", ()), field="attributes")
    for name in attributes:
        if name not in ATTRIBUTE_PROFILE:
            raise MetadataError(f"policy attributes: unknown attribute {name!r}; known: {', '.join(ATTRIBUTE_PROFILE)}")
    nameid_format = _choice(NameIdFormat, d.get("nameid_format", defaults.nameid_format), field="nameid_format")
    if nameid_format is NameIdFormat.EMAIL and "mail" not in attributes:
        # the e-mail NameID is the mail attribute under another name: released only with it
        raise MetadataError("policy nameid_format 'email' releases the e-mail address: add 'mail' to attributes")
    return PortalPolicy(
        accepted_keys=keys,
        min_level=_level(d.get("min_level", defaults.min_level), scale),
        attributes=attributes,
        nameid_format=nameid_format,
        sign=_choice(SignMode, d.get("sign", defaults.sign), field="sign"),
        display_name=_display_name(d.get("display_name")),
        require_signed_requests=_flag(d.get("require_signed_requests", False), field="require_signed_requests"),
        encrypt_assertions=_flag(d.get("encrypt_assertions", False), field="encrypt_assertions"),
        attribute_names=_choice(AttributeNames, d.get("attribute_names", defaults.attribute_names),
                                field="attribute_names"),
    )


def _strings(value: Any, *, field: str) -> tuple[str, ...]:
    """A list of strings, duplicates dropped, order kept."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise MetadataError(f"policy {field} must be a list of strings, not {type(value).__name__}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise MetadataError(f"policy {field} must be a list of strings; found {item!r}")
    return tuple(dict.fromkeys(items))


def _level(value: Any, scale: list[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetadataError(f"policy min_level must be an integer, not {value!r}")
    if value not in scale:
        raise MetadataError(f"policy min_level {value} is not a configured level; levels: {', '.join(map(str, scale))}")
    return int(value)


def _choice(kind: type[enum.StrEnum], value: Any, *, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise MetadataError(f"policy {field}: unknown value {value!r}; expected one of {choices}") from None


def _display_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MetadataError(f"policy display_name must be a string, not {type(value).__name__}")
    text = " ".join(value.split())
    if len(text) > MAX_DISPLAY_NAME:
        raise MetadataError(f"policy display_name is longer than {MAX_DISPLAY_NAME} characters")
    return text or None


def _flag(value: Any, *, field: str) -> bool:
    if not isinstance(value, bool):
        raise MetadataError(f"policy {field} must be true or false, not {value!r}")
    return value
