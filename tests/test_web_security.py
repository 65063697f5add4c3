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


def test_outside_the_demo_cookies_are_secure_and_hsts_is_sent(make_idp):
    app, services = make_idp(server={"demo": False})
    response = app.test_client().get("/lang/nl?next=/")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # ends with the browser session
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
