"""The login transaction (DESIGN.md §1 step 3, §8.6): one server-side object per
pending login, in the state store, with a short TTL.

It holds the checked request, the keys acceptable for it, the browser it belongs
to, and one namespace per adapter.  Its id travels in the login URLs (so two
tabs can log in to two portals at once); it is only honoured for the browser
that started it.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from idp.errors import LoginExpired
from idp.saml.authn_request import AuthnRequestData

PREFIX = "tx:"


@dataclass
class LoginTransaction:
    id: str
    browser: str
    request: AuthnRequestData
    relay_state: str | None
    keys: list[str]
    min_level: int
    lang: str | None = None
    adapters: dict[str, dict] = field(default_factory=dict)

    def state_for(self, key: str) -> dict:
        return self.adapters.setdefault(key, {})

    def to_mapping(self) -> dict[str, Any]:
        return {"id": self.id, "browser": self.browser, "request": self.request.to_mapping(),
                "relay_state": self.relay_state, "keys": self.keys, "min_level": self.min_level,
                "lang": self.lang, "adapters": self.adapters}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "LoginTransaction":
        return cls(id=data["id"], browser=data["browser"],
                   request=AuthnRequestData.from_mapping(data["request"]),
                   relay_state=data["relay_state"], keys=list(data["keys"]),
                   min_level=int(data["min_level"]), lang=data.get("lang"),
                   adapters=dict(data.get("adapters") or {}))


class Transactions:
    def __init__(self, store, *, ttl: int) -> None:
        self.store = store
        self.ttl = ttl

    def create(self, *, browser: str, request: AuthnRequestData, relay_state: str | None,
               keys: list[str], min_level: int, lang: str | None) -> LoginTransaction:
        tx = LoginTransaction(id=secrets.token_urlsafe(24), browser=browser, request=request,
                              relay_state=relay_state, keys=keys, min_level=min_level, lang=lang)
        self.store.put(PREFIX + tx.id, tx.to_mapping(), ttl=self.ttl)
        return tx

    def load(self, tx_id: str | None, *, browser: str | None) -> LoginTransaction:
        """The transaction, if it exists and belongs to this browser; else ``LoginExpired``."""
        if not tx_id or len(tx_id) > 64:
            raise LoginExpired("no transaction id")
        data = self.store.get(PREFIX + tx_id)
        if data is None:
            raise LoginExpired("transaction unknown or expired")
        if not browser or not secrets.compare_digest(data["browser"], browser):
            raise LoginExpired("transaction started in another browser")
        return LoginTransaction.from_mapping(data)

    def claim(self, tx_id: str | None, *, browser: str) -> LoginTransaction:
        """Bind a transaction created without a browser id (a cross-site POST, whose
        SameSite=Lax cookie the browser did not send) to this browser, once."""
        if not tx_id or len(tx_id) > 64:
            raise LoginExpired("no transaction id")
        data = self.store.get(PREFIX + tx_id)
        if data is None:
            raise LoginExpired("transaction unknown or expired")
        if data["browser"] == "":
            data["browser"] = browser
            tx = LoginTransaction.from_mapping(data)
            self.save(tx)
            return tx
        return self.load(tx_id, browser=browser)

    def save(self, tx: LoginTransaction) -> None:
        """Write back, keeping the TTL; a transaction finished meanwhile stays finished."""
        left = self.store.ttl(PREFIX + tx.id)
        if not left:
            raise LoginExpired("transaction finished or expired meanwhile")
        self.store.put(PREFIX + tx.id, tx.to_mapping(), ttl=left)

    def finish(self, tx: LoginTransaction) -> bool:
        """Single use: True for the first caller only."""
        return self.store.pop(PREFIX + tx.id) is not None
