"""A Redis outage survived (issue 11 §4): a real Redis server of the test's own,
restarted or stopped in the middle of logins and of single sign-on.

No 500 anywhere; a login in flight ends on a clear "start again" page in the
citizen's language; with persistence (append-only file) SSO sessions survive a
restart, without it they are simply gone (the next portal asks for a login);
while Redis is down every page answers 503 "start again", audited, and Sésame
carries on by itself once Redis is back.
"""
from __future__ import annotations

import re
import threading
import time

import pytest

from tests.saml_sp import (FSE, MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow,
                           form_action, form_fields, login_with_password, send)
from tests.services import PrivateRedis

pytestmark = pytest.mark.services


def make_world(make_idp, tmp_path, *, persistent: bool):
    server = PrivateRedis(tmp_path, persistent=persistent)
    server.start()
    app, services = make_idp(store=server.url)
    monespace = TestPortal(services, MON_ESPACE, tmp_path / "sp")
    fse = TestPortal(services, FSE, tmp_path / "sp")
    return server, app, services, monespace, fse


@pytest.fixture
def persistent(make_idp, tmp_path):
    server, *world = make_world(make_idp, tmp_path, persistent=True)
    yield server, *world
    server.stop()


@pytest.fixture
def volatile(make_idp, tmp_path):
    server, *world = make_world(make_idp, tmp_path, persistent=False)
    yield server, *world
    server.stop()


def logged_in(app, portal):
    browser = app.test_client()
    page = follow(browser, send(browser, portal.request()))
    portal.parse(autopost_fields(login_with_password(browser, page, username="marie.dupont"))[1]["SAMLResponse"])
    return browser


def test_with_persistence_sso_sessions_survive_a_restart(persistent):
    server, app, services, monespace, fse = persistent
    browser = logged_in(app, monespace)
    server.restart()
    answer = send(browser, fse.request())  # single sign-on, no page: the session came back with Redis
    assert fse.parse(autopost_fields(answer)[1]["SAMLResponse"]).get_identity()["surname"] == ["Dupont"]


def test_without_persistence_a_restart_ends_sessions_and_logins_in_flight_cleanly(volatile):
    server, app, services, monespace, fse = volatile
    browser = logged_in(app, monespace)
    in_flight = app.test_client()
    in_flight.get("/lang/nl")  # a Dutch-speaking citizen, half-way through a login
    choose = follow(in_flight, send(in_flight, fse.request()))
    key_page = in_flight.get(
        re.search(r'href="(/login/password/\?tx=[^"]+)"', choose.get_data(as_text=True))[1].replace("&amp;", "&"))
    form = key_page.get_data(as_text=True)

    server.restart()

    page = follow(browser, send(browser, fse.request()))  # the session is gone: a login, not an error
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)
    submitted = in_flight.post(form_action(form), data={"csrf_token": form_fields(form)["csrf_token"],
                                                        "username": "marie.dupont", "password": "x"})
    assert submitted.status_code == 400 and error_code(submitted) == "login_expired"
    text = submitted.get_data(as_text=True)
    assert '<html lang="nl">' in text and "opnieuw" in text  # "start again", in Dutch


def test_while_redis_is_down_pages_say_start_again_then_it_carries_on(volatile):
    server, app, services, monespace, fse = volatile
    browser = logged_in(app, monespace)
    browser.get("/lang/de")
    server.stop()
    started = time.monotonic()
    answer = send(browser, fse.request())
    assert time.monotonic() - started < 10  # short timeouts, not a hung worker
    assert answer.status_code == 503 and error_code(answer) == "store_unavailable"
    assert '<html lang="de">' in answer.get_data(as_text=True)
    assert audit_events(services, "store.unavailable")
    assert browser.get("/account/keys").status_code == 503  # the citizen's pages too, not a 500

    server.start()  # the same Sésame, no restart of its own
    page = follow(browser, send(browser, monespace.request()))
    done = login_with_password(browser, page, username="marie.dupont")
    assert monespace.parse(autopost_fields(done)[1]["SAMLResponse"]) is not None


def test_no_500_while_redis_restarts_under_load(volatile):
    """Single sign-on requests from eight browsers while Redis restarts twice."""
    server, app, services, monespace, fse = volatile
    browsers = [logged_in(app, monespace) for _ in range(4)]
    statuses: list[int] = []
    stop = threading.Event()

    def hammer(browser):
        while not stop.is_set():
            answer = send(browser, fse.request())
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=hammer, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            time.sleep(0.3)
            server.restart()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert statuses and 500 not in statuses, sorted(set(statuses))
    assert set(statuses) <= {200, 303, 503}, sorted(set(statuses))

