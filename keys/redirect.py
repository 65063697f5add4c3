"""Signatures of the HTTP-Redirect binding (SAML bindings §3.4.4.1).

The signature covers the octets ``SAMLRequest=<v>&RelayState=<v>&SigAlg=<v>``
(or ``SAMLResponse=``; ``RelayState`` only when present) where each ``<v>``
is the URL-encoded value *exactly as transmitted*: the verifier never decodes
and re-encodes the signed components, because encoders differ (``%2F`` vs
``/``, upper vs lower case hex) and the signer's bytes are what count.

The order of the parameters in the received query string does not matter
(the spec fixes the order of the signed string, not of the URL); duplicated
parameters, or both ``SAMLRequest`` and ``SAMLResponse``, are refused.
Parameters outside the five SAML ones are ignored (they are not signed).
"""

from __future__ import annotations

import base64
import binascii
import functools
from urllib.parse import quote, unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from keys.algorithms import ECDSA_SIGNATURES, RSA_SIGNATURES, SIGNATURE_ALGORITHMS, hash_for
from keys.errors import InvalidSignature, MissingSignature, UnsafeSignature
from keys.signer import Signer

_MESSAGES = ("SAMLRequest", "SAMLResponse")
_SAML_PARAMS = frozenset({*_MESSAGES, "RelayState", "SigAlg", "Signature"})
_SIGNING_ORDERS = [
    [message, *relay_state, "SigAlg"] for message in _MESSAGES for relay_state in ([], ["RelayState"])
]


def _encode(value: str) -> str:
    """Form URL-encoding, as browsers and most SAML stacks produce it."""
    return quote(value, safe="").replace("%20", "+")


def sign_query(*, params: list[tuple[str, str]], signer: Signer) -> str:
    """Return the query string (without ``?``) with ``Signature`` appended.

    ``params`` are decoded values in signing order: ``SAMLRequest`` or
    ``SAMLResponse``, optionally ``RelayState``, then ``SigAlg``.  When
    ``SigAlg`` is omitted, the signer's default algorithm is appended.
    ``ValueError`` for any other name or order.
    """
    names = [name for name, _ in params]
    if names and names[-1] != "SigAlg":
        params = [*params, ("SigAlg", signer.default_algorithm)]
        names.append("SigAlg")
    if names not in _SIGNING_ORDERS:
        raise ValueError(f"parameters must be SAMLRequest|SAMLResponse, [RelayState], SigAlg; got {names}")
    algorithm = params[-1][1]
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise ValueError(f"unsupported SigAlg {algorithm!r}")
    signed = "&".join(f"{name}={_encode(value)}" for name, value in params)
    signature = signer.sign_bytes(signed.encode("ascii"), algorithm=algorithm)
    return f"{signed}&Signature={_encode(base64.b64encode(signature).decode('ascii'))}"


def verify_query(*, raw_query: str, certificates: list[bytes]) -> None:
    """Verify the signature of a received HTTP-Redirect query string.

    ``raw_query`` is the query string as received (``QUERY_STRING``, without
    ``?``), still URL-encoded.  ``certificates`` are PEM; one must verify.
    Raises ``MissingSignature`` (no ``Signature`` / ``SigAlg``),
    ``UnsafeSignature`` (duplicates, algorithm refused, malformed) or
    ``InvalidSignature``.
    """
    if not raw_query.isascii():
        raise UnsafeSignature("query string is not URL-encoded ASCII")
    raw = _split(raw_query)
    messages = [name for name in _MESSAGES if name in raw]
    if len(messages) != 1:
        raise UnsafeSignature("expected exactly one of SAMLRequest / SAMLResponse")
    if "Signature" not in raw:
        raise MissingSignature("query string is not signed")
    if "SigAlg" not in raw:
        raise MissingSignature("signature without SigAlg")
    algorithm = unquote_plus(raw["SigAlg"])
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise UnsafeSignature("signature algorithm refused")
    order = [messages[0], "RelayState", "SigAlg"]
    signed = "&".join(f"{name}={raw[name]}" for name in order if name in raw)
    signature = _decode_signature(raw["Signature"])
    if not certificates:
        raise InvalidSignature("no trusted certificate to verify with")
    for certificate in certificates:
        if _verifies(signed.encode("ascii"), signature, algorithm=algorithm, certificate=certificate):
            return
    raise InvalidSignature("signature does not verify with any trusted certificate")


def _split(raw_query: str) -> dict[str, str]:
    """Raw (still encoded) values of the SAML parameters; duplicates refused."""
    raw: dict[str, str] = {}
    for part in raw_query.lstrip("?").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name not in _SAML_PARAMS:
            continue
        if name in raw:
            raise UnsafeSignature(f"duplicated parameter {name}")
        raw[name] = value
    return raw


def _decode_signature(raw_value: str) -> bytes:
    # A '+' not encoded as %2B by a lax sender becomes ' ': put it back.  Safe,
    # the signature value is not itself signed.
    text = unquote_plus(raw_value).replace(" ", "+")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UnsafeSignature("Signature is not valid base64") from None


@functools.lru_cache(maxsize=256)
def _public_key(certificate: bytes):
    """The public key of a PEM certificate, ``None`` if unreadable.  Cached: metadata
    certificates repeat on every message (the key objects are immutable, shareable)."""
    try:
        return x509.load_pem_x509_certificate(certificate).public_key()
    except ValueError:
        return None


def _verifies(data: bytes, signature: bytes, *, algorithm: str, certificate: bytes) -> bool:
    public_key = _public_key(bytes(certificate))
    if public_key is None:
        return False
    digest = hash_for(algorithm)
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm in RSA_SIGNATURES:
            public_key.verify(signature, data, padding.PKCS1v15(), digest)
            return True
        if isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm in ECDSA_SIGNATURES:
            public_key.verify(_ecdsa_der(signature, public_key), data, ec.ECDSA(digest))
            return True
    except (_CryptoInvalidSignature, ValueError):
        return False
    return False


def _ecdsa_der(signature: bytes, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Accept XML-DSig ``r || s`` (RFC 4051) and DER (as some Java stacks send)."""
    size = (public_key.curve.key_size + 7) // 8
    if len(signature) == 2 * size:
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        return encode_dss_signature(r, s)
    return signature
