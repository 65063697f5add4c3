"""What the tests of the keys that send codes share (tests/test_email_code_key.py,
tests/test_sms_code_key.py; the two keys share one base, adapters/sent_code.py):
a Sésame with both keys, a real SMTP server and a real SMS gateway
(tests/messaging.py) and a pysaml2 portal (the ``keys`` fixture, a ``Keys``
world), and the walks of an activation and a login.

Negative answers are asserted by error code (``data-code``), HTTP status, what
the servers received and audit rows, never by wording.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest
from sqlalchemy import select

from idp import create_app
from idp.app.demo import DEMO_PASSWORD, create_citizens, make_nrn
from idp.app.services import Services
from idp.persistence.models import AuditEvent, Person
from tests.conftest import idp_settings
from tests.messaging import CODE, mail_settings, sms_settings
from tests.saml_sp import MON_ESPACE, TestPortal, audit_events, follow, form_action, form_fields, send
from tests.standin_keys import KEY_TYPES
from tests.strong_login import STRONG, login_strong, strong_keys

MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
MARIE_MAIL = "marie.dupont@example.be"
# Small limits, so that each can be reached in a few requests; the password lockout
# high enough not to be what stops the wrong codes.
CODE_SETTINGS = {"max_code_attempts": 4, "max_failures": 50, "sends_per_account": 4}
TTL, COOLDOWN = 600, 60
MAX_CODES = CODE_SETTINGS["max_code_attempts"]



class Keys:
    """Sésame with both sent-code keys, the real SMTP server and SMS gateway, and portals by level."""

    def __init__(self, tmp_path, clock, smtp_server, sms_gateway) -> None:
        self.tmp_path, self.clock, self.smtp, self.gateway = tmp_path, clock, smtp_server, sms_gateway
        settings = idp_settings(
            tmp_path, keys=strong_keys("password", "email_code", "sms_code", email_code=dict(CODE_SETTINGS),
                                       sms_code=dict(CODE_SETTINGS)),
            mail=mail_settings(smtp_server), sms=sms_settings(sms_gateway),
            # Enough Argon2 slots that parallel posts are checked, not answered "busy".
            limits={"max_concurrent_hashes": 32, "hash_wait_seconds": 10.0})
        self.services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
        create_citizens(self.services)
        self.app = create_app(services=self.services)
        self._portals: dict[int, TestPortal] = {}

    def portal(self, min_level: int = 200) -> TestPortal:
        """A portal accepting every key, at ``min_level`` (one entity per level)."""
        if min_level not in self._portals:
            spec = replace(MON_ESPACE, slug=f"portal{min_level}", base_url=f"http://localhost:{18100 + min_level}",
                           policy=(("accepted_keys", ["password", "email_code", "sms_code", STRONG]),
                                   ("min_level", min_level),
                                   ("attributes", ["surname", "givenName", "egovNRN", "mail"]),
                                   ("nameid_format", "persistent"), ("display_name", "Mon Espace")))
            self._portals[min_level] = TestPortal(self.services, spec, self.tmp_path / "sp")
        return self._portals[min_level]

    def audit(self, event: str) -> list[AuditEvent]:
        return audit_events(self.services, event)

    def fedid(self, nrn: str = MARIE_NRN) -> str:
        with self.services.database.session() as s:
            return s.scalar(select(Person.fedid).where(Person.nrn == nrn))

    def active(self, key: str) -> bool:
        return self.services.credentials.has_active(key=key, person_fedid=self.fedid())


@pytest.fixture
def keys(tmp_path, clock, smtp_server, sms_gateway):
    world = Keys(tmp_path, clock, smtp_server, sms_gateway)
    yield world
    world.services.database.dispose()


# --- walks through the pages -------------------------------------------------------------
def post_form(browser, page_response, **fields):
    """Post the page's first form (its action and CSRF token) with ``fields``."""
    html = page_response.get_data(as_text=True)
    return browser.post(form_action(html), data={"csrf_token": form_fields(html)["csrf_token"], **fields})


def step_url(page_response, key: str, step: str) -> str:
    """The URL of one of the key's steps in this journey (to forge a post out of order)."""
    tx = re.search(r"tx=([A-Za-z0-9_-]+)", form_action(page_response.get_data(as_text=True)))[1]
    return f"/login/{key}/{step}?tx={tx}"


def csrf(page_response) -> str:
    return form_fields(page_response.get_data(as_text=True))["csrf_token"]


def strong_browser(keys: Keys):
    browser = keys.app.test_client()
    login_strong(browser, MARIE_NRN)
    return browser


def start_activation(keys: Keys, browser, key: str):
    """From the home page of a strongly logged-in browser: the wizard's first step."""
    home = browser.get("/")
    assert f'id="activate-{key}"' in home.get_data(as_text=True)
    page = follow(browser, browser.post(f"/journeys/activate/{key}", data={"csrf_token": csrf(home), "next": "/"}))
    assert page.status_code == 200, page.get_data(as_text=True)[:400]
    return page


def count(inbox, address: str) -> int:
    return len(inbox.to(address))


def code_of(inbox, address: str, number: int) -> str:
    """The six-digit code of the ``number``-th message to ``address`` (waiting for it)."""
    return CODE.search(inbox.wait_for(address, number).text)[1]


def activate(keys: Keys, browser, key: str, typed: str, address: str, inbox):
    """The whole wizard; returns the last answer (a 303 to the page that asked)."""
    step1 = start_activation(keys, browser, key)
    before = count(inbox, address)
    sent = post_form(browser, step1, address=typed)
    assert sent.status_code == 303, sent.get_data(as_text=True)[:400]
    step2 = follow(browser, sent)
    verified = post_form(browser, step2, code=code_of(inbox, address, before + 1))
    assert verified.status_code == 303 and "/confirm" in verified.headers["Location"]
    step3 = follow(browser, verified)
    return post_form(browser, step3)


def choose(keys: Keys, browser, min_level: int = 200):
    """A portal's request carried to the key choice page."""
    page = follow(browser, send(browser, keys.portal(min_level).request()))
    assert page.status_code == 200, page.get_data(as_text=True)[:400]
    return page


def offered(choose_page) -> set[str]:
    return set(re.findall(r'id="key-([a-z_]+)"', choose_page.get_data(as_text=True)))


def password_step(keys: Keys, browser, key: str, min_level: int = 200, password: str = DEMO_PASSWORD):
    """Portal request, the key, username + password: the answer to the password post."""
    page = choose(keys, browser, min_level)
    link = re.search(rf'href="(/login/{key}/\?tx=[^"]+)"', page.get_data(as_text=True))
    assert link, f"{key} not offered"
    form = browser.get(link[1].replace("&amp;", "&"))
    return post_form(browser, form, username="marie.dupont", password=password)


def code_page(keys: Keys, browser, key: str, min_level: int = 200):
    answer = password_step(keys, browser, key, min_level)
    assert answer.status_code == 303 and answer.headers["Location"].startswith(f"/login/{key}/code"), \
        answer.get_data(as_text=True)[:400]
    return follow(browser, answer)


def resend(browser, page_response, key: str):
    return browser.post(step_url(page_response, key, "resend"), data={"csrf_token": csrf(page_response)})


def activated_browser(keys: Keys, key: str, typed: str, address: str, inbox):
    """Marie with ``key`` active; returns a fresh browser (no session) for a portal login."""
    done = activate(keys, strong_browser(keys), key, typed, address, inbox)
    assert done.status_code == 303 and done.headers["Location"] == "/"
    return keys.app.test_client()
