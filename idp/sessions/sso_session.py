"""The SSO session (DESIGN.md §1 steps 4 and 7, §5).

Kept in the state store under an id that the browser holds in its (session-long)
signed cookie.  A new id is issued at every login and step-up, so a session id
seen before the login is worth nothing after it.  The record lists the portals
that took part, for logout.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

PREFIX = "sso:"
INDEX_PREFIX = "sidx:"


@dataclass
class SsoSession:
    id: str
    person_id: int
    fedid: str
    key: str
    level: int
    authn_instant: float
    created: float
    index: str = ""  # the SessionIndex portals see; never the session id itself
    portals: list[str] = field(default_factory=list)
    # entity ID -> [NameID, NameID format] last sent to that portal, for its LogoutRequest
    subjects: dict[str, list[str]] = field(default_factory=dict)

    def satisfies(self, *, keys: list[str], min_level: int, requirement) -> bool:
        """Whether this session may answer a portal without a new login."""
        if self.key not in keys or self.level < min_level:
            return False
        return requirement is None or requirement.accepts(self.level)

    def to_mapping(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SsoSessions:
    def __init__(self, store, *, lifetime: int, clock) -> None:
        self.store = store
        self.lifetime = lifetime
        self.clock = clock

    def get(self, sid: str | None) -> SsoSession | None:
        if not sid or len(sid) > 64:
            return None
        data = self.store.get(PREFIX + sid)
        return SsoSession(**data) if data else None

    def start(self, *, previous: str | None, person_id: int, fedid: str, key: str, level: int,
              authn_instant: float) -> SsoSession:
        """A new session id at every login; the previous session is ended.

        Portals of the previous session are kept when it was the same person,
        so that logout still reaches them.
        """
        portals: list[str] = []
        old = self.get(previous)
        if old is not None:
            if old.person_id == person_id:
                portals = old.portals
            self._delete(old)
        session = SsoSession(id=secrets.token_urlsafe(32), person_id=person_id, fedid=fedid, key=key,
                             level=level, authn_instant=authn_instant, created=self.clock.now(),
                             index=secrets.token_urlsafe(16), portals=portals)
        self.store.put(PREFIX + session.id, session.to_mapping(), ttl=self.lifetime)
        self.store.put(INDEX_PREFIX + session.index, session.id, ttl=self.lifetime)
        return session

    def by_index(self, index: str | None) -> SsoSession | None:
        """The session a portal names by its ``SessionIndex`` (logout without a cookie)."""
        if not index or len(index) > 64:
            return None
        return self.get(self.store.get(INDEX_PREFIX + index))

    def _delete(self, session: SsoSession) -> None:
        self.store.delete(PREFIX + session.id)
        if session.index:
            self.store.delete(INDEX_PREFIX + session.index)

    def add_portal(self, session: SsoSession, entity_id: str, subject: tuple[str, str] | None = None) -> None:
        """Record a portal (and the NameID it was sent), merged with what other
        requests of the same session recorded meanwhile."""
        if entity_id not in session.portals:
            session.portals.append(entity_id)
        if subject is not None:
            session.subjects[entity_id] = list(subject)
        current = self.get(session.id)
        left = self.store.ttl(PREFIX + session.id)
        if current is None or not left:
            return
        if entity_id in current.portals and (subject is None or current.subjects.get(entity_id) == list(subject)):
            return
        session.portals = current.portals + [p for p in session.portals if p not in current.portals]
        session.subjects = {**current.subjects, **({entity_id: list(subject)} if subject else {})}
        self.store.put(PREFIX + session.id, session.to_mapping(), ttl=left)

    def end(self, sid: str | None) -> SsoSession | None:
        session = self.get(sid)
        if session is not None:
            self._delete(session)
        return session
