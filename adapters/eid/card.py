"""The card, through PKCS#11 (PyKCS11): find it, read its authentication
certificate, sign a challenge with its *Authentication* key after the PIN.

Runs on the citizen's computer, in the ``sesame eid`` helper, never on the
server.  The Belgian middleware's module (``libbeidpkcs11.so``) is the
default; any PKCS#11 module works (SoftHSM2 in tests and the demo).  Errors
are ``CardError`` with a code the helper and the login page both know, and
the PIN retry state as the token reports it (``CKF_USER_PIN_*`` flags).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import PyKCS11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.eid import webeid

DEFAULT_MODULE = "libbeidpkcs11.so"
KEY_LABEL = "Authentication"  # as on a Belgian eID card: key and certificate share it

# Error codes (the helper's JSON answers; the login page words them).
NO_READER, NO_CARD, REMOVED, PIN_INCORRECT, PIN_LOCKED, CANCELLED, CARD_ERROR = (
    "no_reader", "no_card", "card_removed", "pin_incorrect", "pin_locked", "cancelled", "card_error")

_REMOVED = {getattr(PyKCS11, name) for name in (
    "CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT", "CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED",
    "CKR_DEVICE_ERROR", "CKR_SLOT_ID_INVALID", "CKR_OBJECT_HANDLE_INVALID", "CKR_KEY_HANDLE_INVALID")}

_libraries: dict[str, PyKCS11.PyKCS11Lib] = {}
_load_lock = threading.Lock()


class CardError(Exception):
    def __init__(self, code: str, detail: str, *, tries: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.tries = code, detail, tries


@dataclass(frozen=True)
class Card:
    slot: int
    token_label: str
    certificate: x509.Certificate

    @property
    def holder(self) -> str:
        names = self.certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.certificate.subject.rfc4514_string()

    @property
    def nrn(self) -> str:
        found = self.certificate.subject.get_attributes_for_oid(x509.oid.NameOID.SERIAL_NUMBER)
        return str(found[0].value) if found else ""


def library(module: str) -> PyKCS11.PyKCS11Lib:
    """The PKCS#11 module, loaded once per process (C_Initialize may run once)."""
    with _load_lock:
        if module not in _libraries:
            lib = PyKCS11.PyKCS11Lib()
            try:
                lib.load(module)
            except PyKCS11.PyKCS11Error as exc:
                raise CardError(NO_READER, f"cannot load the PKCS#11 module {module}: {exc}") from None
            _libraries[module] = lib
        return _libraries[module]


def pin_tries(flags: int) -> str | None:
    """What the token says of the PIN's remaining tries (PKCS#11 gives flags, not a number)."""
    if flags & PyKCS11.CKF_USER_PIN_LOCKED:
        return "locked"
    if flags & PyKCS11.CKF_USER_PIN_FINAL_TRY:
        return "final_try"
    if flags & PyKCS11.CKF_USER_PIN_COUNT_LOW:
        return "count_low"
    return None


def _error(exc: PyKCS11.PyKCS11Error, lib, slot: int | None) -> CardError:
    if exc.value in _REMOVED:
        return CardError(REMOVED, f"the card was removed: {exc}")
    tries = None
    if slot is not None:
        try:
            tries = pin_tries(lib.getTokenInfo(slot).flags)
        except PyKCS11.PyKCS11Error:
            pass
    if exc.value == PyKCS11.CKR_PIN_INCORRECT:
        return CardError(PIN_LOCKED if tries == "locked" else PIN_INCORRECT, str(exc), tries=tries)
    if exc.value == PyKCS11.CKR_PIN_LOCKED:
        return CardError(PIN_LOCKED, str(exc), tries="locked")
    if exc.value in (PyKCS11.CKR_FUNCTION_CANCELED, PyKCS11.CKR_PIN_LEN_RANGE):
        return CardError(CANCELLED if exc.value == PyKCS11.CKR_FUNCTION_CANCELED else PIN_INCORRECT, str(exc))
    return CardError(CARD_ERROR, str(exc))


def _objects(session, cls, label: str):
    return session.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, label)])


def cards(module: str = DEFAULT_MODULE) -> list[Card]:
    """The cards present: tokens holding an *Authentication* certificate."""
    lib = library(module)
    try:
        slots = lib.getSlotList(tokenPresent=True)
    except PyKCS11.PyKCS11Error as exc:
        raise CardError(NO_READER, f"no card reader: {exc}") from None
    found = []
    for slot in slots:
        try:
            info = lib.getTokenInfo(slot)
            if not info.flags & PyKCS11.CKF_TOKEN_INITIALIZED:
                continue
            session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION)
            try:
                handles = _objects(session, PyKCS11.CKO_CERTIFICATE, KEY_LABEL)
                if handles:
                    der = bytes(session.getAttributeValue(handles[0], [PyKCS11.CKA_VALUE])[0])
                    found.append(Card(slot, info.label.strip(), x509.load_der_x509_certificate(der)))
            finally:
                session.closeSession()
        except PyKCS11.PyKCS11Error as exc:
            if exc.value in _REMOVED:
                continue  # pulled out while we looked: not present
            raise _error(exc, lib, slot) from None
    return found


def authenticate(card: Card, *, origin: str, nonce: str, pin: str, module: str = DEFAULT_MODULE,
                 app_version: str = "sesame-eid/1.0", between=None) -> dict[str, str]:
    """The Web eID token: log in with ``pin``, sign ``hash(origin) || hash(nonce)``
    with the *Authentication* key.  ``between`` (tests) runs after the login,
    before the signature: where a card is pulled out in real life."""
    lib = library(module)
    public = card.certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        algorithm = "ES384" if public.curve.key_size >= 384 else "ES256"
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA)  # the card signs a hash we compute
    elif isinstance(public, rsa.RSAPublicKey):
        algorithm = "RS256"
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS)
    else:
        raise CardError(CARD_ERROR, "the card's key is neither EC nor RSA")
    data = webeid.signed_data(algorithm, origin, nonce)
    if algorithm.startswith("ES"):
        data = webeid.digest(webeid.HASHES[algorithm], data)
    try:
        session = lib.openSession(card.slot, PyKCS11.CKF_SERIAL_SESSION)
    except PyKCS11.PyKCS11Error as exc:
        raise _error(exc, lib, card.slot) from None
    try:
        session.login(pin)
        if between is not None:
            between(session)
        keys = _objects(session, PyKCS11.CKO_PRIVATE_KEY, KEY_LABEL)
        if not keys:
            raise CardError(CARD_ERROR, "no Authentication key on this card")
        signature = bytes(session.sign(keys[0], data, mechanism))
    except PyKCS11.PyKCS11Error as exc:
        raise _error(exc, lib, card.slot) from None
    finally:
        try:
            session.logout()
            session.closeSession()
        except PyKCS11.PyKCS11Error:
            pass  # already gone with the card
    return webeid.encode(card.certificate.public_bytes(Encoding.DER), algorithm, signature, app_version)
