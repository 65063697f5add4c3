"""JOSE for the OpenID Connect connector, with jwcrypto: our key files, our
public JWKS, what we sign (request objects, ``private_key_jwt`` assertions)
and what we open (ID tokens and userinfo answers, signed, possibly encrypted).

Every failure to open a token is a ``JoseError`` naming what was wrong (a
short code for the audit trail); the caller turns it into a citizen's page.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Mapping

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import JWException, json_encode

# Signatures we accept from a provider: never "none", never HMAC (a public
# client secret would let anyone sign).  Encryption: RSA-OAEP and ECDH-ES key
# management, AES-GCM and AES-CBC-HMAC contents (itsme uses RSA-OAEP +
# A128CBC-HS256); RSA1_5 is left out (Bleichenbacher).
SIGNING_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
KEY_ALGS = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"]
CONTENT_ALGS = ["A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"]


class JoseError(Exception):
    """A token that cannot be trusted; ``code`` says why (audit, tests)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


# --- our keys ----------------------------------------------------------------------
def load_key(path: Path, *, generate: bool, use: str) -> jwk.JWK:
    """Our private key from a PEM file; created (RSA 2048, mode 0600) when
    missing and ``generate`` is set (demo mode), else a ``FileNotFoundError``.
    The ``kid`` is the key's RFC 7638 thumbprint: stable across restarts."""
    path = Path(path).expanduser()
    if not path.exists():
        if not generate:
            raise FileNotFoundError(f"no key file {path}")
        _create(path)
    key = jwk.JWK.from_pem(path.read_bytes())
    if not key.has_private:
        raise ValueError(f"{path} holds no private key")
    return jwk.JWK(**{**json.loads(key.export_private()), "kid": key.thumbprint(), "use": use})


def _create(path: Path) -> None:
    """Write a new RSA key, exclusively: a private name then a hard link, so two
    processes starting together end up reading the same key (keys/generate.py)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = jwk.JWK.generate(kty="RSA", size=2048).export_to_pem(private_key=True, password=None)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask may have narrowed it, never widened
            handle.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won: its key stands
    finally:
        tmp.unlink(missing_ok=True)


def public_jwks(*keys: jwk.JWK, algs: Mapping[str, str]) -> dict:
    """The public halves, with ``use`` and ``alg`` (by ``use``), as a JWKS."""
    out = []
    for key in keys:
        public = json.loads(key.export_public())
        public["alg"] = algs[public["use"]]
        out.append(public)
    return {"keys": out}


# --- what we sign ------------------------------------------------------------------
def sign(claims: Mapping[str, Any], key: jwk.JWK, alg: str) -> str:
    token = jws.JWS(json_encode(dict(claims)))
    token.add_signature(key, alg, protected={"alg": alg, "kid": key.get("kid"), "typ": "JWT"})
    return token.serialize(compact=True)


def encrypt(payload: str, key: jwk.JWK, alg: str, enc: str, *, cty: str = "JWT") -> str:
    header = {"alg": alg, "enc": enc, "cty": cty}
    if key.get("kid"):
        header["kid"] = key.get("kid")
    token = jwe.JWE(payload.encode(), protected=header)
    token.add_recipient(key)
    return token.serialize(compact=True)


def pick_key(jwks: Mapping[str, Any], use: str) -> jwk.JWK | None:
    """The provider's first key for ``use`` ("enc": to encrypt our request object)."""
    for data in jwks.get("keys", []):
        if data.get("use", use) == use:
            return jwk.JWK(**data)
    return None


# --- what we open -----------------------------------------------------------------------
def is_encrypted(token: str) -> bool:
    return token.count(".") == 4  # compact JWE has five parts, JWS three


def decrypt(token: str, key: jwk.JWK) -> str:
    """The inner token of a compact JWE, or ``JoseError("bad_encryption")``."""
    try:
        outer = jwe.JWE()
        outer.allowed_algs = KEY_ALGS + CONTENT_ALGS
        outer.deserialize(token, key=key)
        return outer.payload.decode()
    except (JWException, ValueError, TypeError) as exc:
        raise JoseError("bad_encryption", type(exc).__name__) from None


def verify(token: str, jwks: Callable[[bool], Mapping[str, Any]]) -> dict:
    """The claims of a compact JWS signed by one of the provider's keys.

    ``jwks(refresh)`` gives the provider's JWKS; an unknown ``kid`` asks once
    for a fresh copy (the provider rolled its keys) before it is refused."""
    try:
        outer = jws.JWS()
        outer.allowed_algs = SIGNING_ALGS
        outer.deserialize(token)
        header = outer.jose_header
    except (JWException, ValueError, TypeError) as exc:
        raise JoseError("malformed", type(exc).__name__) from None
    if header.get("alg") not in SIGNING_ALGS:
        raise JoseError("bad_alg", str(header.get("alg"))[:20])
    kid = header.get("kid")
    key = _find(jwks(False), kid) or _find(jwks(True), kid)
    if key is None:
        raise JoseError("unknown_kid", str(kid)[:64])
    try:
        outer.verify(key)
        claims = json.loads(outer.payload)
    except (JWException, ValueError, TypeError) as exc:
        raise JoseError("bad_signature", type(exc).__name__) from None
    if not isinstance(claims, dict):
        raise JoseError("malformed", "claims are not an object")
    return claims


def _find(jwks: Mapping[str, Any], kid: str | None) -> jwk.JWK | None:
    keys = [k for k in jwks.get("keys", []) if k.get("use", "sig") == "sig"]
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    elif len(keys) != 1:  # without a kid, only an unambiguous key set will do
        return None
    return jwk.JWK(**keys[0]) if keys else None
