"""No 5xx from user input: every route of the application, reached with hostile
values in its path, query and form fields (huge, NUL, invalid UTF-8, control
characters, odd Unicode), with a valid session and CSRF token so that the
handlers themselves are reached.  A refusal is a page (4xx), never a 500.
"""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.saml_sp import follow, form_fields, send

HOSTILE = [
    "A" * 60_000,
    "\x00",
    "a\x00b",
    "\x01\x1b[31m\x7f",
    "\t/\n/evil.example",
    "ﬃ" * 171,
    "\u202e\u0000\ufeff",
    "%ff%fe%00",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "9" * 400,
]
RAW_INVALID_UTF8 = b"\xff\xfe\xfd"
FIELDS = ["username", "password", "code", "next", "level", "tx", "error", "SAMLRequest", "SAMLResponse",
          "RelayState", "state", "resume", "run", "SigAlg", "Signature", "nonce", "signature", "nrn"]
PATH_PARTS = ["password", "%00", "%ff", "..%2f..", "a" * 300, "%E2%80%AE", "return", "static"]


@pytest.fixture
def reached(world):
    """A browser with a session, a live journey and a CSRF token."""
    app, services, monespace, _ = world
    browser = app.test_client()
    choose = follow(browser, send(browser, monespace.request()))
    tx = re.search(r"tx=([A-Za-z0-9_-]+)", choose.request.url)[1]
    token = form_fields(browser.get("/").get_data(as_text=True))["csrf_token"]
    return app, browser, tx, token


def _routes(app) -> list[tuple[str, set[str]]]:
    found = []
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) & {"GET", "POST"}
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", "{" + name + "}", path)
        found.append((path, methods))
    # Cancelling ends the journey the other requests need: last.
    return sorted(found, key=lambda route: route[0] == "/login/cancel")


def _fill(path: str, part: str | dict) -> str:
    """The route with its arguments: one value for all, or by argument name (``key``, ``step``...)."""
    names = part if isinstance(part, dict) else {}
    return re.sub(r"\{([a-z_]+)\}", lambda m: names.get(m[1], "password") if names else part, path)


def test_every_route_survives_hostile_fields(reached):
    app, browser, tx, token = reached
    failures, checked = [], []
    for path, methods in _routes(app):
        for part in ({"key": "password", "step": "submit"}, {"key": "password", "step": "password"}):
            url = _fill(path, part)
            for value, journey in [(v, tx) for v in HOSTILE] + [(HOSTILE[1], HOSTILE[1]), (HOSTILE[5], HOSTILE[0])]:
                query = {name: value for name in FIELDS}
                query["tx"] = journey  # the real journey, so that the handlers are reached; then junk
                if "GET" in methods:
                    answer = browser.get(url, query_string=query)
                    if answer.status_code >= 500:
                        failures.append(("GET", url, value[:20], answer.status_code))
                if "POST" in methods:
                    form = {**query, "csrf_token": token}
                    answer = browser.post(url + f"?tx={quote(journey)}", data=form)
                    if url == "/login/password/submit" and answer.status_code == 401:
                        checked.append(value)  # the password check itself was reached
                    if answer.status_code >= 500:
                        failures.append(("POST", url, value[:20], answer.status_code))
    assert failures == [], failures[:20]
    assert len(checked) >= 8, "the hostile values did not reach the password check"


@pytest.mark.parametrize("part", PATH_PARTS)
def test_hostile_path_parts(reached, part):
    app, browser, tx, token = reached
    for path, methods in _routes(app):
        url = _fill(path, part)
        if "GET" in methods:
            assert browser.get(url + f"?tx={tx}").status_code < 500, url
        if "POST" in methods:
            assert browser.post(url + f"?tx={tx}", data={"csrf_token": token}).status_code < 500, url


def test_invalid_utf8_and_json_bodies(reached):
    app, browser, tx, token = reached
    for path, methods in _routes(app):
        url = _fill(path, "password")
        if "POST" not in methods:
            continue
        raw = b"csrf_token=" + token.encode() + b"&username=" + RAW_INVALID_UTF8 + b"&password=" + RAW_INVALID_UTF8
        answer = browser.post(url + f"?tx={tx}", data=raw, content_type="application/x-www-form-urlencoded")
        assert answer.status_code < 500, url
        answer = browser.post(url + f"?tx={tx}", data=b'{"nrn": [1, {"x": null}], "signature": 1e999',
                              content_type="application/json", headers={"X-CSRFToken": token})
        assert answer.status_code < 500, url
        answer = browser.post(url + f"?tx={tx}", data=b"[1, 2, 3]", content_type="application/json",
                              headers={"X-CSRFToken": token})
        assert answer.status_code < 500, url
    raw_query = "/login/password/submit?tx=" + tx + "&%ff=%fe"
    assert browser.get(raw_query).status_code < 500
