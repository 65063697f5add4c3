"""The Web eID authentication token (format ``web-eid:1.0``), both sides.

The card signs ``hash(origin) || hash(nonce)`` with its authentication key,
the hash being the algorithm's (SHA-256 for ``ES256``/``RS256``, SHA-384 for
``ES384``/``RS384``); the token carries the certificate (base64 DER), the
algorithm, the signature (base64; ECDSA as the raw ``r || s`` a card gives)
and the format.  Binding the origin stops a page of another site from relaying
our nonce to the card and the signature to us; the nonce, single use, stops a
replay.  Pure functions: no I/O.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

FORMAT = "web-eid:1.0"
HASHES = {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512,
          "RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}
MAX_TOKEN = 16_000  # characters: a certificate and a signature, base64


class TokenRefused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class AuthToken:
    certificate: x509.Certificate
    algorithm: str
    signature: bytes
    app_version: str


def signed_data(algorithm: str, origin: str, nonce: str) -> bytes:
    """What the card signs (its mechanism hashes this once more)."""
    hash_type = HASHES[algorithm]
    return digest(hash_type, origin.encode("utf-8")) + digest(hash_type, nonce.encode("utf-8"))


def digest(hash_type, data: bytes) -> bytes:
    h = hashes.Hash(hash_type())
    h.update(data)
    return h.finalize()


def encode(certificate_der: bytes, algorithm: str, signature: bytes, app_version: str) -> dict[str, str]:
    return {"unverifiedCertificate": base64.b64encode(certificate_der).decode("ascii"), "algorithm": algorithm,
            "signature": base64.b64encode(signature).decode("ascii"), "format": FORMAT, "appVersion": app_version}


def to_code(token: dict) -> str:
    """The token as one line to copy and paste (URL-safe base64 of its JSON)."""
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode("ascii").rstrip("=")


def parse(text: str | None) -> AuthToken:
    """A token from its JSON, or from the pasted code; ``TokenRefused("eid_token_invalid")`` otherwise."""
    text = (text or "").strip()
    if not text or len(text) > MAX_TOKEN:
        raise TokenRefused("eid_token_invalid", "empty or oversized token")
    if not text.startswith("{"):
        try:
            text = base64.urlsafe_b64decode("".join(text.split()) + "=" * (-len(text) % 4)).decode("utf-8")
        except (binascii.Error, ValueError):
            raise TokenRefused("eid_token_invalid", "neither JSON nor a code") from None
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise TokenRefused("eid_token_invalid", "not JSON") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in (
            "unverifiedCertificate", "algorithm", "signature", "format")):
        raise TokenRefused("eid_token_invalid", "fields missing")
    if data["format"] != FORMAT and not data["format"].startswith(FORMAT + "."):
        raise TokenRefused("eid_token_invalid", f"format {data['format'][:20]!r}")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(data["unverifiedCertificate"], validate=True))
        signature = base64.b64decode(data["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise TokenRefused("eid_token_invalid", "certificate or signature unreadable") from None
    return AuthToken(certificate, data["algorithm"], signature, str(data.get("appVersion", ""))[:200])


def verify(token: AuthToken, *, origin: str, nonce: str, allowed: tuple[str, ...]) -> None:
    """The signature over ``origin`` and ``nonce`` with the certificate's key, by an allowed algorithm."""
    if token.algorithm not in allowed or token.algorithm not in HASHES:
        raise TokenRefused("eid_token_invalid", f"algorithm {token.algorithm[:12]!r} not allowed")
    hash_type = HASHES[token.algorithm]()
    data = signed_data(token.algorithm, origin, nonce)
    key = token.certificate.public_key()
    try:
        if token.algorithm.startswith("ES"):
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise TokenRefused("eid_signature_invalid", "an ECDSA algorithm for a non-EC key")
            size = (key.curve.key_size + 7) // 8
            if len(token.signature) != 2 * size:
                raise TokenRefused("eid_signature_invalid", "ECDSA signature of the wrong length")
            r, s = (int.from_bytes(token.signature[:size], "big"), int.from_bytes(token.signature[size:], "big"))
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_type))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise TokenRefused("eid_signature_invalid", "an RSA algorithm for a non-RSA key")
            key.verify(token.signature, data, padding.PKCS1v15(), hash_type)
    except TokenRefused:
        raise
    except Exception:  # InvalidSignature
        raise TokenRefused("eid_signature_invalid", "signature does not match origin and nonce") from None
