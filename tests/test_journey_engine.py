"""The journey engine itself (idp/journeys/engine.py), called without Flask: each
outcome a key may return, the validation of what a key proved, claiming a
journey once under concurrency, and sessions never lowered.

A scripted key (defined here, test-only) returns whatever outcome the test
sets; the rest is real: the SQL store, the portal registry, pysaml2's request,
the signed response.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import pytest
from saml2 import BINDING_HTTP_POST

from adapters import ADAPTERS
from adapters.base import (Adapter, AuthResult, Challenge, Failure, Group, Json, Purpose, Redirect, Subject,
                           SubjectKind, Success)
from adapters.settings import KeySettings
from idp import errors
from idp.app.demo import create_citizens
from idp.app.services import Services
from idp.journeys.answers import Go, JsonAnswer, Page, PostToPortal
from idp.journeys.context import HttpInput
from idp.journeys.engine import Engine
from idp.journeys.validation import refusal
from idp.saml.authn_request import AuthnRequestData
from idp.app.config import load_settings
from idp.sessions.levels import LevelTable
from tests.conftest import idp_settings
from tests.saml_sp import FSE, TestPortal

MARIE = Subject(SubjectKind.USERNAME, "marie.dupont", "password")


class ScriptedKey(Adapter):
    """Returns ``self.next`` from every step; test-only."""

    id = "scripted"
    group = Group.EID
    level = 300
    levels = (200, 400)
    ports = frozenset({"clock"})
    next: object = None

    @dataclass(frozen=True)
    class Settings(KeySettings):
        pass

    def page_policy(self):
        return {"connect-src": ("http://127.0.0.1:24727",)}

    def begin(self, ctx):
        return self.next

    def action(self, ctx, step):
        ctx.state.setdefault("steps", []).append(step)
        return self.next


class FakeUrls:
    def choose(self, journey_id, error=None):
        return f"/choose/{journey_id}" + (f"?error={error}" if error else "")

    def begin(self, key, journey_id):
        return f"/begin/{key}/{journey_id}"

    def step(self, key, step, journey_id):
        return f"/step/{key}/{step}/{journey_id}"

    def key_return(self, key):
        return f"http://idp.test/return/{key}"

    def resume(self, journey_id):
        return f"/resume/{journey_id}"


@dataclass
class Rig:
    services: Services
    engine: Engine
    key: ScriptedKey
    portal: TestPortal

    def http(self, method="POST", sid=None, **kwargs) -> HttpInput:
        return HttpInput(method=method, form=kwargs.get("form", {}), args={}, remote_addr="127.0.0.1",
                         browser="browser-1", sid=sid, lang=None)

    def journey(self, **request_kwargs) -> str:
        sent = self.portal.request(binding=BINDING_HTTP_POST, sign=False, **request_kwargs)
        request, portal = self.services.sso.read(binding=BINDING_HTTP_POST, message=sent.data["SAMLRequest"],
                                                 raw_query=None)
        answer = self.engine.portal_request(request=request, portal=portal, relay_state=None, http=self.http())
        assert isinstance(answer, Go) and answer.url.startswith("/choose/")
        return answer.url.split("/")[2]

    def result(self, *, key="scripted", level=300, subject=MARIE) -> AuthResult:
        return AuthResult(subject=subject, key=key, level=level, authn_instant=self.services.clock.now())

    def successes(self) -> int:
        from sqlalchemy import func, select

        from idp.persistence.models import AuditEvent
        with self.services.database.session() as s:
            return s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "login.success"))


@pytest.fixture
def rig(tmp_path, clock) -> Rig:
    settings = idp_settings(tmp_path, keys={"enabled": ["password", "scripted"]})
    services = Services.build(settings, clock=clock, key_types={**ADAPTERS, "scripted": ScriptedKey})
    create_citizens(services)
    spec = replace(FSE, policy=(("accepted_keys", ["password", "scripted"]), ("min_level", 100),
                                ("attributes", ["surname"]), ("nameid_format", "transient")))
    rig = Rig(services, Engine(services, FakeUrls()), services.adapters["scripted"],
              TestPortal(services, spec, tmp_path / "sp"))
    yield rig
    services.database.dispose()


# --- every outcome ---------------------------------------------------------------------
def test_challenge_becomes_a_page_with_the_keys_policy(rig):
    tx = rig.journey()
    rig.key.next = Challenge("standin/x.html", {"nonce": "n"}, error="bad_code", status=401, params={"n": 2})
    page = rig.engine.step(tx, "scripted", "go", rig.http())
    assert isinstance(page, Page) and (page.template, page.status) == ("standin/x.html", 401)
    assert page.values["nonce"] == "n" and page.values["error_code"] == "bad_code"
    assert page.values["error_params"] == {"n": 2} and page.values["journey"].id == tx
    assert page.policy == {"connect-src": ("http://127.0.0.1:24727",)}
    # the key's namespace was saved
    assert rig.services.journeys.load(tx, browser="browser-1").steps["scripted"] == {"steps": ["go"]}


def test_redirect_and_json_pass_through(rig):
    tx = rig.journey()
    rig.key.next = Redirect("https://provider.example/authorize")
    assert rig.engine.begin(tx, "scripted", rig.http("GET")) == Go("https://provider.example/authorize")
    rig.key.next = Json({"next": "/x"}, 202)
    assert rig.engine.step(tx, "scripted", "sign", rig.http()) == JsonAnswer({"next": "/x"}, 202)


def test_failure_goes_back_to_the_key_choice_with_its_parameters(rig):
    tx = rig.journey()
    rig.key.next = Failure("too_many_attempts", {"minutes": 3})
    assert rig.engine.step(tx, "scripted", "go", rig.http()) == Go(f"/choose/{tx}?error=too_many_attempts")
    page = rig.engine.choose(tx, rig.http("GET"), "too_many_attempts")
    assert page.values["error_params"] == {"minutes": 3} and page.values["keys"] == ["password", "scripted"]


def test_success_answers_the_portal_once_and_finishes_the_journey(rig):
    tx = rig.journey()
    rig.key.next = Success(rig.result(level=400))
    answer = rig.engine.step(tx, "scripted", "go", rig.http())
    assert isinstance(answer, PostToPortal) and answer.new_sid
    session = rig.services.sessions.get(answer.new_sid)
    assert (session.key, session.level) == ("scripted", 400)
    with pytest.raises(errors.LoginExpired):
        rig.engine.step(tx, "scripted", "go", rig.http())
    assert rig.successes() == 1


def test_anything_else_is_a_bug_of_the_key(rig):
    tx = rig.journey()
    rig.key.next = "not an outcome"
    with pytest.raises(TypeError):
        rig.engine.step(tx, "scripted", "go", rig.http())


# --- validation of what a key proved -----------------------------------------------------
@pytest.mark.parametrize("result_key,level,code", [
    ("password", 300, "result_refused"),   # a key claiming another key's result
    ("scripted", 500, "level_not_reached"),  # outside the key's own range
    ("scripted", 100, "level_not_reached"),
])
def test_a_result_the_journey_cannot_accept_never_starts_a_session(rig, result_key, level, code):
    tx = rig.journey()
    rig.key.next = Success(rig.result(key=result_key, level=level))
    answer = rig.engine.step(tx, "scripted", "go", rig.http())
    assert answer == Go(f"/choose/{tx}?error={code}") and answer.new_sid is None
    assert rig.successes() == 0
    assert rig.services.journeys.load(tx, browser="browser-1")  # still open for another key


def test_a_level_below_the_request_is_refused(rig):
    from saml2.saml import AuthnContextClassRef
    from saml2.samlp import RequestedAuthnContext

    wanted = RequestedAuthnContext(authn_context_class_ref=[
        AuthnContextClassRef(text="urn:be:fedict:iam:fas:citizen:Level300")], comparison="minimum")
    tx = rig.journey(requested_authn_context=wanted)
    rig.key.next = Success(rig.result(level=200))
    assert rig.engine.step(tx, "scripted", "go", rig.http()).url.endswith("error=level_not_reached")
    rig.key.next = Success(rig.result(level=300))
    assert isinstance(rig.engine.step(tx, "scripted", "go", rig.http()), PostToPortal)


def test_a_key_not_acceptable_for_the_journey_cannot_run(rig):
    tx = rig.journey()
    with pytest.raises(errors.UnknownKey):
        rig.engine.begin(tx, "nonexistent", rig.http("GET"))
    rig.services.journeys.load(tx, browser="browser-1")
    with pytest.raises(errors.LoginExpired):
        rig.engine.begin(tx, "scripted", replace(rig.http("GET"), browser="browser-2"))


@pytest.mark.parametrize("kwargs,reason", [
    (dict(key="x"), "result_of_another_key"),
    (dict(acceptable=["password"]), "key_not_acceptable"),
    (dict(level=450), "level_outside_key_range"),
    (dict(min_level=400), "level_below_minimum"),
    (dict(requirement=LevelTable.from_settings(load_settings(environ={})["levels"]).requirement(
        ["http://eidas.europa.eu/LoA/high"], "minimum")),
     "level_not_requested"),
    (dict(), None),
])
def test_refusal(kwargs, reason):
    result = AuthResult(subject=MARIE, key=kwargs.pop("key", "k"), level=kwargs.pop("level", 300),
                        authn_instant=0.0)
    args = dict(result=result, key="k", acceptable=["k"], key_levels=(200, 400), min_level=100, requirement=None)
    args.update(kwargs)
    assert refusal(**args) == reason


# --- claimed once, whatever the concurrency ----------------------------------------------
def test_parallel_successes_of_one_journey_answer_the_portal_once(rig):
    tx = rig.journey()
    rig.key.next = Success(rig.result())
    barrier, answers = threading.Barrier(8), []

    def finish():
        barrier.wait()
        try:
            answers.append(rig.engine.step(tx, "scripted", "go", rig.http()))
        except (errors.LoginExpired, errors.JourneyConflict) as exc:
            answers.append(exc)

    threads = [threading.Thread(target=finish) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(a, PostToPortal) for a in answers) == 1, answers
    assert rig.successes() == 1


# --- sessions are raised, never lowered --------------------------------------------------
def test_a_later_lower_login_keeps_the_higher_session(rig):
    tx = rig.journey()
    rig.key.next = Success(rig.result(level=400))
    first = rig.engine.step(tx, "scripted", "go", rig.http())
    tx2 = rig.journey(force_authn="true")
    rig.key.next = Success(rig.result(level=200))
    second = rig.engine.step(tx2, "scripted", "go", rig.http(sid=first.new_sid))
    assert second.new_sid != first.new_sid and rig.services.sessions.get(first.new_sid) is None
    assert rig.services.sessions.get(second.new_sid).level == 400


# --- journeys without a portal -----------------------------------------------------------
def test_sesame_login_goes_back_to_the_page_that_asked(rig):
    answer = rig.engine.sesame_login(done_url="/account", min_level=300, http=rig.http())
    tx = answer.url.split("/")[2]
    journey = rig.services.journeys.load(tx, browser="browser-1")
    assert journey.purpose is Purpose.SESAME and journey.portal is None and journey.keys == ["scripted"]
    rig.key.next = Success(rig.result(level=300))
    done = rig.engine.step(tx, "scripted", "go", rig.http())
    assert done == Go("/account", new_sid=done.new_sid) and done.new_sid


def test_undeclared_ports_are_not_reachable(rig):
    tx = rig.journey()
    seen = {}

    class Peek(ScriptedKey):
        def action(self, ctx, step):
            seen["clock"] = ctx.ports.clock
            with pytest.raises(AttributeError):
                ctx.ports.credentials  # not declared
            return Json({})

    rig.services.adapters["scripted"] = Peek()
    rig.engine.step(tx, "scripted", "go", rig.http())
    assert seen["clock"] is rig.services.clock


def test_request_data_round_trips_in_a_journey(rig):
    tx = rig.journey()
    journey = rig.services.journeys.load(tx, browser="browser-1")
    assert isinstance(journey.portal.request, AuthnRequestData) and journey.portal.entity_id == FSE.entity_id


def test_an_identity_sesame_does_not_know_is_refused_and_audited(rig):
    tx = rig.journey()
    rig.key.next = Success(rig.result(subject=Subject(SubjectKind.USERNAME, "nobody", "password")))
    with pytest.raises(errors.UnknownPerson):
        rig.engine.step(tx, "scripted", "go", rig.http())
    from sqlalchemy import select

    from idp.persistence.models import AuditEvent
    with rig.services.database.session() as s:
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert (last.event, last.result) == ("login.refused", "unknown_person")
    assert rig.successes() == 0


def test_only_a_parked_request_is_resumed(rig):
    tx = rig.journey()
    with pytest.raises(errors.LoginExpired):
        rig.engine.resume(tx, rig.http("GET"))
    assert rig.services.journeys.load(tx, browser="browser-1")  # the login in progress is not ended
