"""Signed, single-use, short-lived state values for trips outside Sésame.

A key that sends the citizen to an external provider (itsme's OpenID Connect
``state``, an eIDAS node's SAML ``RelayState``) comes back to one fixed
endpoint per key, ``/login/<key>/return``, without ``?tx=``.  The journey is
found from the state value alone: ``<nonce>.<HMAC>``, the nonce naming a
store entry ``return:<nonce>`` that holds the journey id and the key, popped
atomically on the way back (single use, across every node) and expiring with
the store's clock (short-lived).  The HMAC (itsdangerous, the application's
secret) lets a forged or mistyped value be refused without a store lookup.
At 50 characters it fits SAML's 80-byte ``RelayState``.
"""
from __future__ import annotations

import secrets

from itsdangerous import BadSignature, Signer

from idp.errors import ReturnRefused

PREFIX = "return:"
PARKED = "parked-return:"
PARKED_TTL = 120         # seconds between a cross-site POST and the browser's GET
MAX_PARKED_FIELDS = 20
MAX_STATE = 128


class ReturnStates:
    def __init__(self, store, *, secret: bytes, ttl: int) -> None:
        self.store = store
        self.ttl = ttl
        self.signer = Signer(secret, salt="sesame.journey-return", sep=".")

    def issue(self, *, journey_id: str, key: str) -> str:
        nonce = secrets.token_urlsafe(16)
        self.store.put(PREFIX + nonce, {"journey": journey_id, "key": key}, ttl=self.ttl)
        return self.signer.sign(nonce).decode("ascii")

    def redeem(self, state: str | None, *, key: str) -> str:
        """The journey id the state names, once; ``ReturnRefused`` for anything else."""
        if not state or len(state) > MAX_STATE:
            raise ReturnRefused("no state")
        try:
            nonce = self.signer.unsign(state.encode("ascii", "replace")).decode("ascii")
        except BadSignature:
            raise ReturnRefused("state with a bad signature") from None
        entry = self.store.pop(PREFIX + nonce)
        if entry is None:
            raise ReturnRefused("state unknown, expired or already used")
        if entry["key"] != key:
            raise ReturnRefused(f"state issued for key {entry['key']}, returned to {key}")
        return entry["journey"]

    # A cross-site POST return carries no SameSite=Lax cookie, so the browser
    # (and its journey) is unknown: its fields wait here for the top-level GET.
    def park(self, fields: dict[str, str]) -> str:
        if len(fields) > MAX_PARKED_FIELDS:
            raise ReturnRefused("too many fields in a return")
        parked = secrets.token_urlsafe(24)
        self.store.put(PARKED + parked, fields, ttl=PARKED_TTL)
        return parked

    def unpark(self, parked: str) -> dict[str, str]:
        """The fields of a parked return, once."""
        fields = self.store.pop(PARKED + parked[:64]) if parked else None
        if fields is None:
            raise ReturnRefused("parked return unknown, expired or resumed already")
        return fields
