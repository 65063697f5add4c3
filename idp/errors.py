"""Domain errors (DESIGN.md §8.7).

Each error has a stable ``code`` (asserted by tests), a message key translated in
fr/nl/de/en, an HTTP status and, where the error may be answered to a portal,
a SAML status.  Library exceptions are translated into these at the boundary;
the error handlers of ``idp.app.web`` (``init_web``) render them as the error
page, with the translated message and the HTTP status.  An error with a SAML
status raised for a checked request is answered to the portal instead, as a
signed response (``idp.journeys.engine``, ``SsoService.respond_error``).
"""
from __future__ import annotations

SAML_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
SAML_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
SAML_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
SAML_NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
SAML_REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
SAML_AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
SAML_INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"


class SesameError(Exception):
    """Base of every error a user or a portal may be told about."""

    code = "error"
    http_status = 400
    saml_status: str | None = None  # second-level status; None: never answered to a portal
    saml_top = SAML_REQUESTER

    def __init__(self, detail: str = "", **params: object) -> None:
        super().__init__(detail or self.code)
        self.detail = detail  # for logs and operators, never shown to citizens
        self.params = params


class ConfigError(SesameError):
    code = "config"


# --- SAML request errors: the sender cannot be trusted with a response ---------
class SamlRequestError(SesameError):
    code = "saml_request"


class MalformedRequest(SamlRequestError):
    code = "malformed_request"


class UnknownPortal(SamlRequestError):
    code = "unknown_portal"


class UnknownConsumer(SamlRequestError):
    code = "unknown_consumer_url"


class SignatureRequired(SamlRequestError):
    code = "signature_required"


class BadSignature(SamlRequestError):
    code = "bad_signature"


class StaleRequest(SamlRequestError):
    code = "stale_request"


class ReplayedRequest(SamlRequestError):
    code = "replayed_request"


class WrongDestination(SamlRequestError):
    code = "wrong_destination"


# --- errors answered to a trusted consumer URL with a SAML status --------------
class NoAuthnContext(SesameError):
    code = "no_authn_context"
    saml_status = SAML_NO_AUTHN_CONTEXT
    saml_top = SAML_RESPONDER


class NoPassive(SesameError):
    code = "no_passive"
    saml_status = SAML_NO_PASSIVE
    saml_top = SAML_RESPONDER


class NoAcceptableKey(SesameError):
    code = "no_acceptable_key"
    saml_status = SAML_NO_AUTHN_CONTEXT
    saml_top = SAML_RESPONDER


class InvalidNameIdPolicy(SesameError):
    code = "invalid_nameid_policy"
    saml_status = SAML_INVALID_NAMEID_POLICY


# --- the servers behind ----------------------------------------------------------
class StoreUnavailable(SesameError):
    """The state store (Redis) or the database does not answer: what was in flight
    is to be started again; nothing half-written is kept."""

    code = "store_unavailable"
    http_status = 503


# --- login flow ----------------------------------------------------------------
class LoginExpired(SesameError):
    code = "login_expired"


class UnknownKey(SesameError):
    code = "unknown_key"
    http_status = 404


class KeyNotAllowed(SesameError):
    code = "key_not_allowed"
    http_status = 403


class CsrfFailed(SesameError):
    code = "csrf_failed"


class NotFound(SesameError):
    code = "not_found"
    http_status = 404


class Overloaded(SesameError):
    code = "internal"
    http_status = 500


class Cancelled(SesameError):
    """The citizen chose not to log in; the portal is told ``AuthnFailed``."""

    code = "cancelled"
    saml_status = SAML_AUTHN_FAILED
    saml_top = SAML_RESPONDER


class EncryptionUnavailable(SesameError):
    """The policy demands encrypted assertions and the metadata has no usable
    encryption key: the portal is answered ``Responder``, never the assertion in clear."""

    code = "encryption_unavailable"
    saml_top = SAML_RESPONDER


# --- journeys --------------------------------------------------------------------
class JourneyConflict(SesameError):
    """Two requests of one journey at once: the later one is refused, nothing lost."""

    code = "journey_conflict"
    http_status = 409


class ReturnRefused(SesameError):
    """A return from outside with an unknown, expired, reused or forged state."""

    code = "bad_return"


class ResultRefused(SesameError):
    """A key proved something the journey cannot accept (wrong key, level too low,
    another person): never a session, never an answer to a portal."""

    code = "result_refused"
    http_status = 403


class UnknownPerson(SesameError):
    """A key proved an identity Sésame does not know and may not provision."""

    code = "unknown_person"
    http_status = 403


# --- self-service ------------------------------------------------------------------
class ActivationLevel(SesameError):
    """Activating a key needs a session at ``[account] activation_level`` (the eID
    or itsme): a weaker login, or none, may not add a key to a person."""

    code = "activation_level"
    http_status = 403
