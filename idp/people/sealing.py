"""Secrets at rest (a TOTP seed): sealed with AES-256-GCM under a key from
configuration (``[server] seal_key``, else the data folder's ``seal_key``
file), so that a reader of the database, or of a backup, sees no usable seed.

``cryptography``'s AEAD, not a home-made scheme: the 96-bit nonce is random per
seal, and the associated data binds a sealed value to what it belongs to (a
seed copied onto another person's credential does not open).  The AES key is
derived from the configured secret with HKDF, so any long random string works
as ``seal_key``.  A sealed value reads ``v1.<base64url(nonce || ciphertext)>``:
the prefix leaves room for another scheme later.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adapters.port_errors import SealBroken  # noqa: F401 (raised here, caught by keys)

PREFIX = "v1."
NONCE_BYTES = 12


class Sealer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the seal key needs at least 16 bytes of secret")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sesame seal v1").derive(secret)
        self._aead = AESGCM(key)
        # A second key from the same secret (another ``info``): the MAC key never doubles as the AES key.
        self._mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                             info=b"sesame fingerprint v1").derive(secret)

    def seal(self, plain: str, *, owner: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode("utf-8"), owner.encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, owner: str) -> str:
        if not isinstance(sealed, str) or not sealed.startswith(PREFIX):
            raise SealBroken("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX):].encode("ascii"))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode("utf-8"))
        except (ValueError, InvalidTag) as exc:
            raise SealBroken("the sealed value does not open") from exc
        return plain.decode("utf-8")

    def fingerprint(self, value: str, *, owner: str) -> str:
        """A keyed hash (HMAC-SHA-256) of a short secret that is only ever compared
        (the codes of a paper token): ``fp1.<hex>``.

        Argon2 for 24 codes would cost seconds per card; a MAC under a key the
        database does not hold is as good against a database reader and costs
        microseconds.  ``owner`` is in the MAC input (length-prefixed, so owner
        and value cannot be shifted into one another): a value fingerprinted
        for one person does not match for another.  Compare with
        ``hmac.compare_digest``.
        """
        owned = owner.encode("utf-8")
        message = len(owned).to_bytes(4, "big") + owned + value.encode("utf-8")
        return "fp1." + hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()
