"""Offices, officers, registrations and activation codes, in the database.

Every change is one transaction: a registration writes the person, the
registration and the code together, and sends the activation e-mail before it
commits (a mail that cannot go leaves nothing behind).  The activation code's
attempts are counted in the database by one conditional UPDATE, reserved
before the code is compared: parallel posts never get more than
``max_attempts`` comparisons, and of several right ones exactly one redeems it.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from idp.office import codes
from idp.office.bis import new_bis
from idp.office.forms import NewPerson, Refused
from idp.people import usernames
from idp.people.credentials import PASSWORD_KEY
from idp.persistence.models import ActivationCode, Credential, Office, OfficerRole, Person, Registration

OFFICE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")  # upper case: never one of the citizen's paths
PENDING, REDEEMED, ACTIVATED, REPLACED = "pending", "redeemed", "activated", "replaced"


@dataclass(frozen=True)
class OfficeInfo:
    code: str
    name: str


@dataclass(frozen=True)
class Issued:
    """A new activation code: ``code`` and ``link`` in clear, for this one answer (the page, the e-mail)."""

    registration_id: int
    person_fedid: str
    nrn: str
    name: str
    mail: str
    lang: str
    office: str
    code: str
    link: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class RegistrationRow:
    id: int
    person_fedid: str
    nrn: str
    surname: str
    given_name: str
    mail: str | None
    lang: str
    doc_type: str
    doc_number: str
    doc_country: str
    officer_fedid: str
    created_at: dt.datetime
    code_status: str | None   # the latest code's: pending, void, expired, redeemed, activated


@dataclass(frozen=True)
class Grant:
    """A code just redeemed: who may now activate a key, without a session."""

    code_id: int
    registration_id: int
    person_fedid: str


@dataclass(frozen=True)
class Attempt:
    error: str | None              # None: right code, ``grant`` set
    attempts_left: int = 0
    grant: Grant | None = None
    person_fedid: str | None = None  # for the audit row


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)  # SQLite drops the zone


class RegistrationOffice:
    def __init__(self, database, secret_key: bytes, *, clock=None, lifetime_days: int = 30, max_attempts: int = 3,
                 hasher=None, rules=None) -> None:
        self.database = database
        self.mac = codes.CodeMac(secret_key)
        self.clock = clock
        self.lifetime = dt.timedelta(days=lifetime_days)
        self.max_attempts = max_attempts
        self.hasher, self.rules = hasher, rules  # the password key's, for the password chosen at activation

    @classmethod
    def from_services(cls, services) -> "RegistrationOffice":
        conf = services.settings["office"]
        return cls(services.database, services.secret_key, clock=services.clock,
                   lifetime_days=int(conf.get("code_lifetime_days", 30)),
                   max_attempts=int(conf.get("max_code_attempts", 3)),
                   hasher=services.credentials.hasher, rules=services.credentials.rules)

    def now(self) -> dt.datetime:
        seconds = self.clock.now() if self.clock is not None else None
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc) if seconds else dt.datetime.now(dt.timezone.utc)

    # --- offices and officers (the `sesame office` and `sesame officer` commands) ----------
    def add_office(self, code: str, name: str) -> OfficeInfo:
        code, name = code.strip().upper(), " ".join(name.split())
        if not OFFICE_CODE.match(code):
            raise Refused("bad_office_code")
        if not name or len(name) > 200:
            raise Refused("bad_name")
        try:
            with self.database.session() as s:
                s.add(Office(code=code, name=name))
        except IntegrityError:
            raise Refused("office_exists") from None
        return OfficeInfo(code, name)

    def offices(self) -> list[OfficeInfo]:
        with self.database.session() as s:
            return [OfficeInfo(o.code, o.name) for o in s.scalars(select(Office).order_by(Office.code))]

    def office(self, code: str) -> OfficeInfo | None:
        with self.database.session() as s:
            o = s.scalar(select(Office).where(Office.code == code))
            return OfficeInfo(o.code, o.name) if o else None

    def grant(self, office_code: str, nrn: str) -> str | None:
        """Make the person of ``nrn`` an officer of the office: their fedid, None when they already were."""
        try:
            with self.database.session() as s:
                office_id, person_id = self._office_and_person(s, office_code, nrn)
                s.add(OfficerRole(office_id=office_id, person_id=person_id))
                s.flush()
                return s.get(Person, person_id).fedid
        except IntegrityError:
            return None

    def revoke(self, office_code: str, nrn: str) -> str | None:
        """Take the role back: the person's fedid, None when they had none."""
        with self.database.session() as s:
            office_id, person_id = self._office_and_person(s, office_code, nrn)
            done = s.execute(delete(OfficerRole).where(OfficerRole.office_id == office_id,
                                                       OfficerRole.person_id == person_id))
            return s.get(Person, person_id).fedid if done.rowcount else None

    def officers(self, office_code: str) -> list[tuple[str, str]]:
        """(NRN, name) of the office's officers."""
        query = (select(Person.nrn, Person.given_name, Person.surname)
                 .join(OfficerRole, OfficerRole.person_id == Person.id)
                 .join(Office, Office.id == OfficerRole.office_id).where(Office.code == office_code)
                 .order_by(Person.surname))
        with self.database.session() as s:
            return [(nrn or "", f"{given} {surname}") for nrn, given, surname in s.execute(query)]

    def offices_of(self, person_fedid: str) -> list[OfficeInfo]:
        query = (select(Office).join(OfficerRole, OfficerRole.office_id == Office.id)
                 .join(Person, Person.id == OfficerRole.person_id).where(Person.fedid == person_fedid)
                 .order_by(Office.code))
        with self.database.session() as s:
            return [OfficeInfo(o.code, o.name) for o in s.scalars(query)]

    def is_officer(self, office_code: str, person_fedid: str) -> bool:
        query = select(exists().where(OfficerRole.office_id == Office.id, Office.code == office_code,
                                      OfficerRole.person_id == Person.id, Person.fedid == person_fedid))
        with self.database.session() as s:
            return bool(s.scalar(query))

    @staticmethod
    def _office_and_person(s, office_code: str, nrn: str) -> tuple[int, int]:
        office_id = s.scalar(select(Office.id).where(Office.code == office_code.strip().upper()))
        if office_id is None:
            raise Refused("no_such_office")
        person_id = s.scalar(select(Person.id).where(Person.nrn == nrn))
        if person_id is None:
            raise Refused("no_such_person")
        return office_id, person_id

    # --- registrations -----------------------------------------------------------------
    def register(self, *, office_code: str, officer_fedid: str, new: NewPerson,
                 send: Callable[[Issued], None]) -> Issued:
        """Person, registration and activation code, and the e-mail sent, all or nothing.

        :class:`Refused`: ``duplicate_document``, ``nrn_registered``, ``no_such_office``;
        whatever ``send`` raises (``DeliveryFailed``) undoes it all."""
        for _ in range(3):  # two offices drawing the same BIS number: the unique column refuses one, it draws again
            try:
                with self.database.session() as s:
                    office = s.scalar(select(Office).where(Office.code == office_code))
                    if office is None:
                        raise Refused("no_such_office")
                    if self._document_taken(s, new):
                        raise Refused("duplicate_document", "doc_number")
                    if new.nrn is not None and s.scalar(select(Person.id).where(Person.nrn == new.nrn)):
                        raise Refused("nrn_registered", "nrn")
                    nrn = new.nrn or new_bis(new.birth_date, new.sex, lambda n: bool(
                        s.scalar(select(Person.id).where(Person.nrn == n))))
                    person = Person(surname=new.surname, given_name=new.given_names, nrn=nrn, mail=new.mail,
                                    birth_date=new.birth_date, pref_language=new.lang)
                    s.add(person)
                    s.flush()
                    registration = Registration(
                        person_id=person.id, office_id=office.id, officer_fedid=officer_fedid,
                        doc_type=new.doc_type, doc_number=new.doc_number, doc_country=new.doc_country,
                        doc_expiry=new.doc_expiry, nationality=new.nationality)
                    s.add(registration)
                    s.flush()
                    issued = self._issue(s, registration, person, office, officer_fedid)
                    send(issued)  # inside the transaction: no mail, no registration
                    return issued
            except IntegrityError:
                with self.database.session() as s:
                    if self._document_taken(s, new):  # registered meanwhile by another officer
                        raise Refused("duplicate_document", "doc_number") from None
                    if new.nrn is not None:
                        raise Refused("nrn_registered", "nrn") from None
        raise Refused("office_conflict")

    def reissue(self, *, office_code: str, registration_id: int, officer_fedid: str,
                send: Callable[[Issued], None]) -> Issued | None:
        """A new code and link for a registration of this office; every earlier one dies."""
        with self.database.session() as s:
            found = s.execute(select(Registration, Person, Office)
                              .join(Person, Person.id == Registration.person_id)
                              .join(Office, Office.id == Registration.office_id)
                              .where(Registration.id == registration_id, Office.code == office_code)).first()
            if found is None:
                return None
            registration, person, office = found
            s.execute(update(ActivationCode).where(ActivationCode.registration_id == registration.id,
                                                   ActivationCode.status.in_((PENDING, REDEEMED)))
                      .values(status=REPLACED))
            issued = self._issue(s, registration, person, office, officer_fedid)
            send(issued)
            return issued

    def registrations(self, office_code: str, *, limit: int = 200) -> list[RegistrationRow]:
        latest = (select(ActivationCode.registration_id, func.max(ActivationCode.id).label("code_id"))
                  .group_by(ActivationCode.registration_id).subquery())
        query = (select(Registration, Person, ActivationCode)
                 .join(Person, Person.id == Registration.person_id)
                 .join(Office, Office.id == Registration.office_id)
                 .outerjoin(latest, latest.c.registration_id == Registration.id)
                 .outerjoin(ActivationCode, ActivationCode.id == latest.c.code_id)
                 .where(Office.code == office_code).order_by(Registration.id.desc()).limit(limit))
        now = self.now()
        with self.database.session() as s:
            return [RegistrationRow(
                id=r.id, person_fedid=p.fedid, nrn=p.nrn or "", surname=p.surname, given_name=p.given_name,
                mail=p.mail, lang=p.pref_language, doc_type=r.doc_type, doc_number=r.doc_number,
                doc_country=r.doc_country, officer_fedid=r.officer_fedid, created_at=_aware(r.created_at),
                code_status=self._status(c, now) if c is not None else None) for r, p, c in s.execute(query)]

    def registration(self, office_code: str, registration_id: int) -> RegistrationRow | None:
        return next((r for r in self.registrations(office_code, limit=10_000) if r.id == registration_id), None)

    @staticmethod
    def _document_taken(s, new: NewPerson) -> bool:
        return s.scalar(select(Registration.id).where(
            Registration.doc_type == new.doc_type, Registration.doc_number == new.doc_number,
            Registration.doc_country == new.doc_country)) is not None

    def _issue(self, s, registration, person, office, officer_fedid: str) -> Issued:
        code, link = codes.new_code(), codes.new_link()
        expires = self.now() + self.lifetime
        s.add(ActivationCode(registration_id=registration.id, code_hash=self.mac("code", code),
                             link_hash=self.mac("link", link), attempts=0, status=PENDING,
                             issued_by=officer_fedid, created_at=self.now(), expires_at=expires))
        s.flush()
        return Issued(registration_id=registration.id, person_fedid=person.fedid, nrn=person.nrn, mail=person.mail,
                      name=f"{person.given_name} {person.surname}", lang=person.pref_language, office=office.name,
                      code=code, link=link, expires_at=expires)

    # --- activation ------------------------------------------------------------------------
    def _status(self, row: ActivationCode, now: dt.datetime) -> str:
        """pending, or why the code no longer opens anything: void (attempts used up), expired, ..."""
        if row.status != PENDING:
            return row.status
        if row.attempts >= self.max_attempts:
            return "void"
        if _aware(row.expires_at) <= now:
            return "expired"
        return PENDING

    def link_state(self, link: str | None) -> tuple[str, int, str | None]:
        """(status, attempts left, person fedid) of a link; status ``unknown`` for a link that is none."""
        with self.database.session() as s:
            found = self._by_link(s, link)
            if found is None:
                return "unknown", 0, None
            row, fedid = found
            return self._status(row, self.now()), max(self.max_attempts - row.attempts, 0), fedid

    def attempt(self, link: str | None, typed: str | None) -> Attempt:
        """Check a typed code against the link's; a guess is counted before it is compared."""
        status, left, fedid = self.link_state(link)
        if status != PENDING:
            return Attempt(ERRORS_BY_STATUS[status], 0, person_fedid=fedid)
        if not (typed or "").strip():
            return Attempt("missing_activation_code", left, person_fedid=fedid)
        normal = codes.normalise(typed)
        if normal is None:  # cannot be a code: no guess made, none counted
            return Attempt("bad_activation_code_format", left, person_fedid=fedid)
        link_hash = self.mac("link", link)
        with self.database.session() as s:  # the reservation, committed before the comparison
            reserved = s.execute(update(ActivationCode)
                                 .where(ActivationCode.link_hash == link_hash, ActivationCode.status == PENDING,
                                        ActivationCode.attempts < self.max_attempts,
                                        ActivationCode.expires_at > self.now())
                                 .values(attempts=ActivationCode.attempts + 1)).rowcount == 1
        with self.database.session() as s:
            row, fedid = self._by_link(s, link)
            if not reserved:
                return Attempt(ERRORS_BY_STATUS.get(self._status(row, self.now()), "activation_used"), 0,
                               person_fedid=fedid)
            if not self.mac.matches("code", normal, row.code_hash):
                left = max(self.max_attempts - row.attempts, 0)
                return Attempt("bad_activation_code" if left else "activation_code_void", left, person_fedid=fedid)
            # Right: redeemed once.  No attempts condition here: a right code that reserved its
            # attempt in time wins even if wrong ones used up the others meanwhile.
            won = s.execute(update(ActivationCode).where(ActivationCode.id == row.id, ActivationCode.status == PENDING)
                            .values(status=REDEEMED, used_at=self.now())).rowcount == 1
            if not won:
                return Attempt("activation_used", 0, person_fedid=fedid)
            return Attempt(None, 0, Grant(row.id, row.registration_id, fedid), person_fedid=fedid)

    def granted(self, grant: Grant) -> bool:
        """Whether a grant still holds: its code redeemed, not yet used for a key nor replaced."""
        with self.database.session() as s:
            return s.scalar(select(ActivationCode.status).where(ActivationCode.id == grant.code_id)) == REDEEMED

    def prepare(self, grant: Grant, *, lang: str, new_password: tuple[str, str] | None) -> None:
        """The choices of the key page, at once: language, terms accepted, the username + password
        (when the person has none).  :class:`Refused` (``activation_used``, ``username_*``)."""
        now = self.now()
        try:
            with self.database.session() as s:
                if s.scalar(select(ActivationCode.status).where(ActivationCode.id == grant.code_id)) != REDEEMED:
                    raise Refused("activation_used")
                person = s.scalar(select(Person).where(Person.fedid == grant.person_fedid))
                person.pref_language = lang
                s.execute(update(Registration).where(Registration.id == grant.registration_id)
                          .values(terms_accepted_at=now))
                has_password = s.scalar(select(Credential.id).where(
                    Credential.person_id == person.id, Credential.key == PASSWORD_KEY, Credential.status == "active"))
                if new_password is not None and has_password is None:
                    problem = usernames.problem(new_password[0])
                    if problem:
                        raise Refused(f"username_{problem}", "username")
                    lifetime = self.rules.lifetime_days if self.rules is not None else 0
                    s.add(Credential(person_id=person.id, key=PASSWORD_KEY, username=usernames.normalise(
                        new_password[0]), secret_hash=self.hasher.hash(new_password[1]), status="active",
                        activated_at=now, changed_at=now,
                        expires_at=now + dt.timedelta(days=lifetime) if lifetime else None))
                    s.flush()
        except IntegrityError:
            raise Refused("username_taken", "username") from None

    def complete(self, grant: Grant) -> bool:
        """A key was activated with this grant: the code is spent for good (True once)."""
        with self.database.session() as s:
            return s.execute(update(ActivationCode).where(ActivationCode.id == grant.code_id,
                                                          ActivationCode.status == REDEEMED)
                             .values(status=ACTIVATED, used_at=self.now())).rowcount == 1

    def _by_link(self, s, link: str | None):
        if not link or len(link) > 100:
            return None
        return s.execute(select(ActivationCode, Person.fedid)
                         .join(Registration, Registration.id == ActivationCode.registration_id)
                         .join(Person, Person.id == Registration.person_id)
                         .where(ActivationCode.link_hash == self.mac("link", link))).first()


ERRORS_BY_STATUS = {"unknown": "activation_link_unknown", "void": "activation_code_void",
                    "expired": "activation_expired", REDEEMED: "activation_used", ACTIVATED: "activation_used",
                    REPLACED: "activation_replaced"}
