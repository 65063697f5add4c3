"""The operator's brand (``[operator]``), the footer, the help page and the favicon
(issue 14 §5): a deployment brands Sésame without editing templates."""
from __future__ import annotations

import re

import pytest

from idp.errors import ConfigError
from tests.saml_sp import follow, send

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'


def test_every_page_has_the_footer_and_the_default_brand(idp):
    app, _ = idp
    page = app.test_client().get("/").get_data(as_text=True)
    assert re.search(r'<a class="brand" href="/"><span>Sésame</span></a>', page)
    for link, target in (("footer-help", "/help"), ("footer-privacy", "/privacy"),
                         ("footer-accessibility", "/accessibility"), ("footer-contact", "/contact")):
        assert f'href="{target}" id="{link}"' in page
        assert app.test_client().get(target).status_code == 200
    assert 'rel="icon" href="/static/favicon.svg"' in page


def test_an_operator_brands_sesame_by_configuration(make_idp, tmp_path):
    (tmp_path / "idp").mkdir(exist_ok=True)
    (tmp_path / "idp" / "mark.svg").write_bytes(SVG)
    app, _ = make_idp(operator={"name": "Fédération Wallonie-Bruxelles", "mark_file": "mark.svg",
                                "privacy_url": "https://www.example.be/vie-privee",
                                "contact_url": "https://www.example.be/contact",
                                "help_desk_url": "https://aide.example.be/"})
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert '<img src="/operator/mark" alt="" class="mark"><span>Fédération Wallonie-Bruxelles</span>' in page
    assert "· Fédération Wallonie-Bruxelles</title>" in page
    assert 'href="https://www.example.be/vie-privee" id="footer-privacy"' in page
    assert 'href="https://www.example.be/contact" id="footer-contact"' in page
    assert 'href="/accessibility" id="footer-accessibility"' in page  # left empty: Sésame's own page
    mark = client.get("/operator/mark")
    assert mark.status_code == 200 and mark.mimetype == "image/svg+xml" and mark.data == SVG
    assert 'href="https://aide.example.be/" id="help-desk"' in client.get("/help").get_data(as_text=True)


def test_a_missing_or_odd_mark_stops_the_start(make_idp, tmp_path):
    with pytest.raises(ConfigError, match="mark_file"):
        make_idp(operator={"mark_file": "absent.png"})
    (tmp_path / "idp").mkdir(exist_ok=True)
    (tmp_path / "idp" / "mark.exe").write_bytes(b"MZ")
    with pytest.raises(ConfigError, match="mark_file"):
        make_idp(operator={"mark_file": "mark.exe"})


def test_no_mark_configured_is_a_404_not_an_error(idp):
    app, _ = idp
    assert app.test_client().get("/operator/mark").status_code == 404


def test_the_login_page_says_besoin_d_aide(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request())).get_data(as_text=True)
    assert '<a href="/help" id="help">Besoin d\'aide ?</a>' in page
    help_page = browser.get("/help").get_data(as_text=True)
    for question in ("what-do-i-need", "forgotten", "blocked", "no-eid"):
        assert f'id="{question}"' in help_page
    assert 'href="/account/forgot" id="help-forgot"' in help_page


def test_favicon_ico_is_served(idp):
    app, _ = idp
    answer = app.test_client().get("/favicon.ico")
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml" and b"<svg" in answer.data
