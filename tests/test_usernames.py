"""Usernames (idp/people/usernames.py): one normal form for storage, login lookup,
lockout and rate-limit keys; hostile usernames never give a 500.

Reached as citizens and attackers reach them: a portal's AuthnRequest, the key
choice, the password form with its CSRF token (helpers of tests/test_password_key.py),
on the SQL store over SQLite and PostgreSQL, and on Redis.
"""
from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import func, select

from idp.people import usernames
from idp.people.credentials import Credentials
from idp.people.directory import People, UsernameTaken
from idp.persistence.db import Database
from idp.persistence.models import Credential, Person
from tests.services import create_postgres_database, drop_postgres_database
from tests.test_password_key import (  # noqa: F401  (fixtures)
    PASSWORD, WRONG, World, _world, code, logged_in, open_password_form, redis_world, sid, sql_world, submit,
)


def full_width(text: str) -> str:
    """ASCII letters, digits and signs as their full-width forms (ｍａｒｉｅ)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --- the normal form ----------------------------------------------------------------
@pytest.mark.parametrize("typed", ["Marie.Dupont", "ｍarie.dupont", full_width("marie.dupont"), " marie.dupont",
                                   "MARIE.DUPONT\t", "\u3000marie.dupont"])
def test_variants_have_one_normal_form(typed):
    assert usernames.normalise(typed) == "marie.dupont"
    assert usernames.canonical(typed) == usernames.for_storage(typed) == "marie.dupont"


def test_normal_form_folds_case_beyond_ascii_and_is_stable():
    assert usernames.normalise("STRAßE") == usernames.normalise("strasse") == "strasse"
    assert usernames.normalise("ﬃ") == "ffi"
    assert usernames.normalise("Zoé") == usernames.normalise("Zoe\u0301") == "zoé"  # composed or not
    for name in ("marie.dupont", "strasse", "zoé", "ffi" * 66):
        assert usernames.normalise(name) == name


@pytest.mark.parametrize("typed,reason", [
    ("", "empty"), ("   ", "empty"), ("x" * 201, "too_long"), ("ﬃ" * 67, "too_long"), ("ﬃ" * 171, "too_long"),
    ("a" * 60_000, "too_long"), ("\x00", "bad_characters"), ("marie\x00", "bad_characters"),
    ("a\x1b[31m", "bad_characters"), ("\u202emarie", "bad_characters"), ("ma\u200drie", "bad_characters"),
    ("marie\u2028dupont", "bad_characters"),
])
def test_what_cannot_be_a_username(typed, reason):
    assert usernames.problem(typed) == reason
    assert usernames.canonical(typed) is None
    with pytest.raises(usernames.UsernameRefused) as refused:
        usernames.for_storage(typed)
    assert refused.value.reason == reason


def test_longest_usernames_are_accepted():
    assert usernames.canonical("x" * 200) == "x" * 200
    assert usernames.canonical("ﬃ" * 66) == "ffi" * 66  # 198 characters once normalised


# --- storage: People.create, on SQLite and PostgreSQL -------------------------------------
@pytest.fixture
def people(db_url):
    database = Database(db_url)
    database.upgrade()
    yield People(database)
    database.dispose()


def _count(people: People, model) -> int:
    with people.database.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_variant_of_a_taken_username_is_refused(people):
    people.create(surname="Dupont", given_name="Marie", username="Marie.Dupont", password=PASSWORD)
    assert Credentials(people.database, people.hasher).find(key="password", username="marie.dupont").username == "marie.dupont"
    for variant in ("marie.dupont", "ｍarie.dupont", full_width("MARIE.DUPONT"), " marie.dupont"):
        with pytest.raises(UsernameTaken):
            people.create(surname="Dupont", given_name="Marie", username=variant, password=PASSWORD)
    assert _count(people, Person) == _count(people, Credential) == 1  # nothing written by the refusals
    assert Credentials(people.database, people.hasher).find(key="password", username=" MARIE.dupont ").username == "marie.dupont"


@pytest.mark.parametrize("username", ["ﬃ" * 171, "marie\x00", "\x01"])
def test_a_username_that_cannot_be_one_is_refused_at_creation(people, username):
    with pytest.raises(usernames.UsernameRefused):
        people.create(surname="Dupont", given_name="Marie", username=username, password=PASSWORD)
    assert _count(people, Person) == 0


# --- login: HTTP, every variant finds the one account ----------------------------------
def _citizen(world: World, typed: str) -> str:
    """A person created with username ``typed``; returns the stored (normal) form."""
    person = world.services.people.create(surname="Martin", given_name="Zoé", username=typed, password=PASSWORD)
    with world.services.database.session() as s:
        return s.scalar(select(Credential.username).join(Person).where(Person.fedid == person.fedid))


def test_login_finds_the_account_whatever_the_variant_typed(sql_world):
    world = sql_world
    stored = _citizen(world, f"Zoé.Martin-{uuid.uuid4().hex[:8]}")
    assert stored == stored.casefold()
    for typed in (stored, stored.upper(), full_width(stored), f"  {stored.title()} ", "Zoe\u0301" + stored[3:]):
        browser = world.app.test_client()
        answer = submit(browser, open_password_form(browser, world.portal), typed, PASSWORD)
        assert logged_in(answer, world.portal), (typed, code(answer))
        assert world.services.sessions.get(sid(browser)).fedid is not None


# --- hostile usernames: never a 500, and keys of bounded length ---------------------------
@pytest.fixture(scope="module")
def postgres_world(tmp_path_factory, postgres_server):
    url = create_postgres_database()
    world = _world(tmp_path_factory, "sql", database=url)
    yield world
    world.services.database.dispose()
    drop_postgres_database(url)


@pytest.fixture(params=["sql", "postgres", "redis"])
def every_world(request) -> World:
    """SQL store on SQLite, SQL store (and database) on PostgreSQL, Redis store."""
    return request.getfixturevalue(f"{request.param}_world")


HOSTILE = ["ﬃ" * 171, "\x00", "marie\x00dupont", "a\x01b", "\u202emarie", "x" * 201, "ﬃ" * 67, "a" * 60_000,
           "\ufeffmarie"]


def test_hostile_usernames_answer_bad_credentials_never_500(every_world):
    world = every_world
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    for typed in HOSTILE:
        answer = submit(browser, form, typed, WRONG)
        assert (answer.status_code, code(answer)) == (401, "bad_credentials"), (typed[:12], answer.status_code)
    assert sid(browser) is None


def test_a_long_unicode_username_is_counted_under_a_hashed_key(every_world):
    """``ﬃ`` × 66 is a username of 198 characters: its lockout works on every store,
    under a key holding the SHA-256 of its normal form (not the name)."""
    world = every_world
    typed = "ﬃ" * 60 + uuid.uuid4().hex[:6]
    stored = _citizen(world, typed)
    assert stored == "ffi" * 60 + typed[60:] and len(stored) == 186
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    answers = [code(submit(browser, form, typed if i % 2 else stored.upper(), WRONG)) for i in range(5)]
    assert answers == ["bad_credentials"] * 4 + ["account_blocked"]
    subject = hashlib.sha256(stored.encode()).hexdigest()
    assert world.services.store.get(f"lock:password:failures:{subject}") == 5
    assert world.services.store.ttl(f"lock:password:blocked:{subject}")
    assert code(submit(browser, form, stored, PASSWORD)) == "account_blocked"
