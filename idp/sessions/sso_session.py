"""The SSO session (DESIGN.md §1 steps 4 and 7, §5).

Kept in the state store under an id that the browser holds in its (session-long)
signed cookie.  A new id is issued at every login and step-up, so a session id
seen before the login is worth nothing after it.  The record lists the portals
that took part, for logout and for the citizen's "my sessions" page.

Two lifetimes end a session, whichever comes first: the **absolute** one
(``[session] lifetime_seconds``, counted from the first login of the session,
which a step-up does not restart: a new login does not buy another day) and the
**idle** one (``[session] idle_seconds`` since it was last used).  Using a
session moves its store expiry, at most once a minute (``touch_every``), so
that single sign-on does not write the session at every response.
"""
from __future__ import annotations

import math
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
    started: float = 0.0  # the first login of the session: the absolute lifetime counts from here
    seen: float = 0.0     # its last use, at most ``touch_every`` old: the idle timeout counts from here
    # entity ID -> [since, key, level] of the portals answered in this session
    visits: dict[str, list] = field(default_factory=dict)

    def ends(self, lifetime: int) -> float:
        """The absolute end: ``SessionNotOnOrAfter`` of every assertion of this session."""
        return (self.started or self.created) + lifetime

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
    def __init__(self, store, *, lifetime: int, clock, idle: int | None = None, touch_every: int = 60) -> None:
        self.store = store
        self.lifetime = lifetime
        self.idle = idle or lifetime
        self.clock = clock
        self.touch_every = min(touch_every, max(1, self.idle // 10))

    def get(self, sid: str | None) -> SsoSession | None:
        """The live session ``sid``; reading it is using it (idle timeout moved)."""
        if not sid or len(sid) > 64:
            return None
        data = self.store.get(PREFIX + sid)
        if not data:
            return None
        session = SsoSession(**data)
        now = self.clock.now()
        if now >= session.ends(self.lifetime) or now >= (session.seen or session.created) + self.idle:
            self._delete(session)  # the store's expiry follows the same rules; this is the exact edge
            return None
        if now - (session.seen or session.created) >= self.touch_every:
            self._touch(session, data, now)
        return session

    def _ttl(self, session: SsoSession, now: float) -> int:
        return max(1, math.ceil(min(self.idle, session.ends(self.lifetime) - now)))

    def _touch(self, session: SsoSession, data: dict, now: float) -> None:
        """Mark the session used: one compare-and-set that also moves its expiry.  When
        another request changed it meanwhile, the next use touches it instead."""
        if self.store.replace(PREFIX + session.id, {**data, "seen": now}, expected=data, ttl=self._ttl(session, now)):
            session.seen = now

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
        visits: dict[str, list] = {}
        now = self.clock.now()
        started = now
        old = self.get(previous)
        if old is not None:
            if old.person_id == person_id:
                portals, subjects, learned, visits = old.portals, old.subjects, old.attributes, old.visits
                logins = {x.key: [x.level, x.authn_instant, x.authority] for x in old.all_logins()}
                started = old.started or old.created
            self._delete(old)
        if key not in logins or login.level >= logins[key][0]:  # a key's weaker login never replaces its stronger
            logins[key] = [login.level, login.authn_instant, login.authority]
        learned = {**learned, **(attributes or {})}
        strongest = max((Login(k, int(v[0]), float(v[1]), str(v[2])) for k, v in logins.items()),
                        key=lambda x: (x.level, x.authn_instant))
        session = SsoSession(id=secrets.token_urlsafe(32), person_id=person_id, fedid=fedid, key=strongest.key,
                             level=strongest.level, authn_instant=strongest.authn_instant, created=now,
                             index=secrets.token_urlsafe(16), portals=portals, subjects=subjects, logins=logins,
                             attributes=learned, started=started, seen=now, visits=visits)
        self.store.put(PREFIX + session.id, session.to_mapping(), ttl=self._ttl(session, now))
        self.store.put(INDEX_PREFIX + session.index, session.id,
                       ttl=max(1, math.ceil(session.ends(self.lifetime) - now)))
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

    def add_portal(self, session: SsoSession, entity_id: str, subject: tuple[str, str] | None = None, *,
                   key: str | None = None, level: int | None = None) -> None:
        """Record a portal (the NameID it was sent, and since when, with which key
        and level it is logged in) in the stored session.

        Compare-and-set on the store, retried: two responses of one session at
        once (two tabs) both keep their portal, and a session ended meanwhile
        stays ended.  Nothing is read or written when ``session`` (as read for
        this request) already records the portal with this subject, key and
        level: the usual case of a single sign-on to a portal seen before.
        """
        visit = [key, level] if key is not None else None
        if self._recorded(session.__dict__, entity_id, subject, visit):
            return  # a session's portals only grow; an ended one stays ended
        for _ in range(8):
            current = self.store.get(PREFIX + session.id)
            if current is None:
                return
            if self._recorded(current, entity_id, subject, visit):
                return
            merged = dict(current)
            if entity_id not in merged["portals"]:
                merged["portals"] = merged["portals"] + [entity_id]
            if subject is not None:
                merged["subjects"] = {**merged["subjects"], entity_id: list(subject)}
            if visit is not None:
                since = (merged.get("visits") or {}).get(entity_id, [self.clock.now()])[0]
                merged["visits"] = {**(merged.get("visits") or {}), entity_id: [since, *visit]}
            if self.store.replace(PREFIX + session.id, merged, expected=current):
                session.portals, session.subjects = list(merged["portals"]), dict(merged["subjects"])
                session.visits = dict(merged.get("visits") or {})
                return

    @staticmethod
    def _recorded(data: dict, entity_id: str, subject, visit) -> bool:
        return (entity_id in data["portals"]
                and (subject is None or data["subjects"].get(entity_id) == list(subject))
                and (visit is None or (data.get("visits") or {}).get(entity_id, [None])[1:] == visit))

    def end(self, sid: str | None) -> SsoSession | None:
        session = self.get(sid)
        if session is not None:
            self._delete(session)
        return session
