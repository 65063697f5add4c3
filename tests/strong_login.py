"""A level-500 login for the tests, through the test-only ``standin_strong`` key
(tests/standin_keys), until the eID and itsme keys land: what "Mes clés
numériques" asks for before a key is activated.

``strong_keys(*others)`` gives the ``[keys]`` section enabling it (with the
other keys), ``login_strong(client, nrn)`` logs a Flask test client in to
Sésame's own pages at level 500 and returns the last response,
``login_strong_in_browser(page, idp_url, nrn)`` does it in Playwright.
"""
from __future__ import annotations

import re

from tests.saml_sp import follow, form_action, form_fields

STRONG = "standin_strong"
STRONG_SECRET = "strong-stand-in-secret"


def strong_keys(*others: str, **settings) -> dict:
    return {"enabled": [*others, STRONG], STRONG: {"secret": STRONG_SECRET}, **settings}


def login_strong(client, nrn: str, *, next_url: str = "/"):
    """Log ``client`` in at level 500 as the person of ``nrn``; ends on ``next_url``."""
    home = client.get("/").get_data(as_text=True)
    start = client.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"], "next": next_url,
                                                 "level": "500"})
    choose = follow(client, start).get_data(as_text=True)
    link = re.search(rf'href="(/login/{STRONG}/\?tx=[^"]+)"', choose)
    assert link, choose[:600]
    page = client.get(link[1].replace("&amp;", "&")).get_data(as_text=True)
    done = client.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"], "nrn": nrn,
                                                 "secret": STRONG_SECRET})
    assert done.status_code == 303 and done.headers["Location"] == next_url, done.get_data(as_text=True)[:400]
    return done


def login_strong_in_browser(page, idp_url: str, nrn: str, *, next_path: str = "/account/keys") -> None:
    """In a Playwright page: from ``next_path`` (a page offering the strong login), log in at 500."""
    page.goto(f"{idp_url}{next_path}")
    page.click("#login-strong")
    page.click(f"a[href*='/login/{STRONG}/']")
    page.fill("#nrn", nrn)
    page.fill("#secret", STRONG_SECRET)
    page.click("#prove")
    page.wait_for_url(f"{idp_url}{next_path}*")
