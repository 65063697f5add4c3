"""Security defaults of every page (DESIGN.md §7): CSP with frame-ancestors 'none',
no caching, cookies HttpOnly + SameSite=Lax (+ Secure and HSTS outside the demo)."""
from __future__ import annotations

from tests.saml_sp import autopost_fields, follow, login_with_password, send


def test_login_page_headers(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "form-action 'self';" in csp  # the login page posts only to Sésame
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in page.headers  # demo: plain http on localhost


def test_autopost_page_may_post_only_to_the_portal(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    done = login_with_password(browser, page, username="marie.dupont")
    autopost_fields(done)
    assert "form-action 'self' http://localhost:18081;" in done.headers["Content-Security-Policy"]
    assert "<script src=\"/static/autopost.js\">" in done.get_data(as_text=True)


def test_outside_the_demo_cookies_are_secure_and_hsts_is_sent(make_idp, tmp_path):
    from idp.app.services import init_secrets
    from tests.conftest import idp_settings

    init_secrets(idp_settings(tmp_path))  # outside the demo nothing is generated at start
    app, services = make_idp(server={"demo": False})
    response = app.test_client().get("/lang/nl?next=/")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # ends with the browser session
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_logout_form_still_works_after_the_journey_ttl(world, monkeypatch):
    """The home page left open 16 minutes (over the 15 of a journey): "Se déconnecter" still ends
    the session.  Flask-WTF's token carries the time.time() of its signing; move that clock."""
    import re
    import time

    app, services, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    home = browser.get("/").get_data(as_text=True)
    assert "Vous êtes identifié(e)" in home
    token = re.search(r'name="csrf_token" value="([^"]+)"', home)[1]

    later = time.time() + 16 * 60
    monkeypatch.setattr(time, "time", lambda: later)
    services.clock.advance(16 * 60)
    answer = browser.post("/logout", data={"csrf_token": token})
    assert answer.status_code in (200, 303), answer.get_data(as_text=True)[:300]
    assert 'data-code="csrf_failed"' not in answer.get_data(as_text=True)
    assert "Vous êtes identifié(e)" not in browser.get("/").get_data(as_text=True)


def test_forms_are_not_good_forever(world, monkeypatch):
    """The limit is the SSO session's lifetime ([session] lifetime_seconds), not none."""
    import re
    import time

    app, services, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/").get_data(as_text=True))[1]
    later = time.time() + int(services.settings["session"]["lifetime_seconds"]) + 60
    monkeypatch.setattr(time, "time", lambda: later)
    answer = browser.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 400 and 'data-code="csrf_failed"' in answer.get_data(as_text=True)
