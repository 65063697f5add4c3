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


@dataclass(frozen=True)
class Login:
    """One key used in this session: what it reached, when, and who vouched."""

    key: str
    level: int
    authn_instant: float
    authority: str = "sesame"


@dataclass
class SsoSession:
    id: str
    person_id: int
    fedid: str
    key: str              # the strongest login of the session (level, key, instant below)
    level: int
    authn_instant: float
    created: float
    index: str = ""  # the SessionIndex portals see; never the session id itself
    portals: list[str] = field(default_factory=list)
    # entity ID -> [NameID, NameID format] last sent to that portal, for its LogoutRequest
    subjects: dict[str, list[str]] = field(default_factory=dict)
    # key id -> [level, authn instant, authority] of every key used in this session
    logins: dict[str, list] = field(default_factory=dict)
    # identity attributes the keys of this session learned (adapters.base.LEARNABLE names)
    attributes: dict[str, str] = field(default_factory=dict)

    def all_logins(self) -> list[Login]:
        found = [Login(k, int(v[0]), float(v[1]), str(v[2])) for k, v in self.logins.items()]
        if self.key not in self.logins:  # a session recorded before logins were kept
            found.append(Login(self.key, self.level, self.authn_instant))
        return found

    def best_login(self, *, keys: list[str], min_level: int, requirement) -> Login | None:
        """The strongest login of this session that may answer: an acceptable key,
        at the portal's minimum, meeting the request; None if there is none."""
        fitting = [login for login in self.all_logins()
                   if login.key in keys and login.level >= min_level
                   and (requirement is None or requirement.accepts(login.level, login.key))]
        return max(fitting, key=lambda login: (login.level, login.authn_instant), default=None)

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
              authn_instant: float, authority: str = "sesame",
              attributes: dict[str, str] | None = None) -> SsoSession:
        """A new session id at every login; the previous session is ended.

        When the previous session was the same person's, its portals (so that
        logout still reaches them), its logins and its attributes are kept, and
        its level is **never lowered**: a lower-level login (a ``ForceAuthn``
        with the password after the eID) adds a login, the session keeps its
        strongest one.
        """
        login = Login(key, int(level), float(authn_instant), authority)
        portals: list[str] = []
        subjects: dict[str, list[str]] = {}
        logins: dict[str, list] = {}
        learned: dict[str, str] = {}
        old = self.get(previous)
        if old is not None:
            if old.person_id == person_id:
                portals, subjects, learned = old.portals, old.subjects, old.attributes
                logins = {x.key: [x.level, x.authn_instant, x.authority] for x in old.all_logins()}
            self._delete(old)
        if key not in logins or login.level >= logins[key][0]:  # a key's weaker login never replaces its stronger
            logins[key] = [login.level, login.authn_instant, login.authority]
        learned = {**learned, **(attributes or {})}
        strongest = max((Login(k, int(v[0]), float(v[1]), str(v[2])) for k, v in logins.items()),
                        key=lambda x: (x.level, x.authn_instant))
        session = SsoSession(id=secrets.token_urlsafe(32), person_id=person_id, fedid=fedid, key=strongest.key,
                             level=strongest.level, authn_instant=strongest.authn_instant, created=self.clock.now(),
                             index=secrets.token_urlsafe(16), portals=portals, subjects=subjects, logins=logins,
                             attributes=learned)
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
        """Record a portal (and the NameID it was sent) in the stored session.

        Compare-and-set on the store, retried: two responses of one session at
        once (two tabs) both keep their portal, and a session ended meanwhile
        stays ended.  Nothing is read or written when ``session`` (as read for
        this request) already records the portal with this subject: the usual
        case of a single sign-on to a portal seen before in the session.
        """
        if entity_id in session.portals and (subject is None or session.subjects.get(entity_id) == list(subject)):
            # The session as read for this request already records it: nothing to write, no
            # store round trip (a session's portals only grow; an ended one stays ended).
            return
        if entity_id not in session.portals:
            session.portals.append(entity_id)
        if subject is not None:
            session.subjects[entity_id] = list(subject)
        for _ in range(8):
            current = self.store.get(PREFIX + session.id)
            if current is None:
                return
            merged = dict(current)
            has_portal = entity_id in merged["portals"]
            if has_portal and (subject is None or merged["subjects"].get(entity_id) == list(subject)):
                return
            merged["portals"] = merged["portals"] + ([] if has_portal else [entity_id])
            if subject is not None:
                merged["subjects"] = {**merged["subjects"], entity_id: list(subject)}
            if self.store.replace(PREFIX + session.id, merged, expected=current):
                session.portals, session.subjects = list(merged["portals"]), dict(merged["subjects"])
                return

    def end(self, sid: str | None) -> SsoSession | None:
        session = self.get(sid)
        if session is not None:
            self._delete(session)
        return session
