"""Languages: the catalogs are complete and current, and pages render in the chosen language.

French is the source language (the msgids); nl, de and en must translate every
string.  A string added to the sources without re-extracting and translating it
fails here, so it cannot reach citizens untranslated.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from idp.messages import error_message

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "idp" / "translations"
POT = TRANSLATIONS / "messages.pot"
TRANSLATED = ["nl", "de", "en"]
LANGUAGES = ["fr", *TRANSLATED]
# The same command as the one documented for maintainers (babel.cfg at the root).
EXTRACT_ARGS = ["-F", str(ROOT / "babel.cfg"), "-k", "_l", "-k", "lazy_gettext"]

# printf-style placeholders: %(name)s, %s, %d, %% ...
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


def load(path: Path, locale: str | None = None):
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def entries(catalog):
    return [m for m in catalog if m.id]


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def msgids(catalog) -> set[str]:
    return {m.id for m in entries(catalog)}


# -- (a) catalogs are complete -------------------------------------------------

def test_placeholder_pattern():
    assert placeholders("dans %(minutes)s minutes, %d fois, 100 %%") == ["%%", "%(minutes)s", "%d"]
    assert placeholders("plain text") == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_catalog_fully_translated(lang):
    catalog = load(po_path(lang), lang)
    assert str(catalog.locale) == lang
    messages = entries(catalog)
    assert len(messages) > 40  # the catalog is really the one of Sésame, not a stub
    untranslated = [m.id for m in messages if not (m.string or "").strip()]
    fuzzy = [m.id for m in messages if m.fuzzy]
    wrong = [(m.id, m.string) for m in messages
             if m.string and placeholders(m.id) != placeholders(m.string)]
    assert not untranslated, f"{lang}: untranslated: {untranslated}"
    assert not fuzzy, f"{lang}: fuzzy: {fuzzy}"
    assert not wrong, f"{lang}: placeholders differ from the msgid: {wrong}"
    assert not catalog.obsolete, f"{lang}: obsolete entries left: {list(catalog.obsolete)}"
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert not problems, problems


def test_french_catalog_is_consistent():
    # msgstr may stay empty (the msgid is French); when filled it must keep the placeholders.
    catalog = load(po_path("fr"), "fr")
    assert not [m.id for m in entries(catalog) if m.fuzzy]
    wrong = [m.id for m in entries(catalog) if m.string and placeholders(m.id) != placeholders(m.string)]
    assert not wrong


def test_placeholder_messages_are_known():
    # The python-format strings in the sources: they must be flagged and translated with the placeholder.
    pot = load(POT)
    formatted = {m.id for m in entries(pot) if "python-format" in m.flags}
    assert "Votre compte a été bloqué après trop de tentatives. Réessayez dans %(minutes)s minutes." in formatted
    assert "Vous êtes identifié(e) comme %(name)s." in formatted
    for lang in TRANSLATED:
        catalog = load(po_path(lang), lang)
        for msgid in formatted:
            assert catalog[msgid].string and placeholders(catalog[msgid].string) == placeholders(msgid)


# -- (b) catalogs are current with the sources --------------------------------

@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("i18n") / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", "extract", *EXTRACT_ARGS, "-o", str(out), str(ROOT)])
    ids = msgids(load(out))
    # Sanity: the extraction saw Python (lazy_gettext) and Jinja sources alike.
    assert "Ce service en ligne n'est pas connu de Sésame." in ids  # idp/messages.py
    assert "Choisissez votre clé numérique pour vous identifier." in ids  # templates/login/choose.html
    return ids


def test_pot_is_up_to_date(extracted):
    committed = msgids(load(POT))
    assert extracted - committed == set(), "new strings: run pybabel extract and update the catalogs"
    assert committed - extracted == set(), "strings gone from the sources: re-extract and update"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_matches_sources(extracted, lang):
    ids = msgids(load(po_path(lang), lang))
    assert extracted - ids == set(), f"{lang}: strings missing from the catalog (pybabel update)"
    assert ids - extracted == set(), f"{lang}: strings no longer in the sources"


# -- (c) rendering -----------------------------------------------------------

# A string from base.html (title) and one from home.html, per language.
EXPECTED = {
    "fr": ("S'identifier à l'administration en ligne", "Sésame vous identifie auprès des services en ligne"),
    "nl": ("Aanmelden bij de online overheid", "Sésame meldt u aan bij de online diensten"),
    "de": ("Bei der Online-Verwaltung anmelden", "Sésame meldet Sie bei den Online-Diensten"),
    "en": ("Log in to online public services", "Sésame identifies you to the online public services"),
}


def page(response) -> str:
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def assert_language(text: str, lang: str) -> None:
    assert f'<html lang="{lang}">' in text
    for phrase in EXPECTED[lang]:
        assert phrase in text, f"{lang}: {phrase!r} missing"
    for other in LANGUAGES:
        if other != lang:
            assert EXPECTED[other][1] not in text, f"{other} text on the {lang} page"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_home_follows_accept_language(idp, lang):
    app, _services = idp
    with app.test_client() as client:
        text = page(client.get("/", headers={"Accept-Language": f"{lang},en;q=0.5"}))
    assert_language(text, lang)


def test_default_language_is_french(idp):
    app, _services = idp
    with app.test_client() as client:
        assert_language(page(client.get("/")), "fr")
        assert_language(page(client.get("/", headers={"Accept-Language": "es, it;q=0.8"})), "fr")


def test_language_switch_is_kept_in_session(idp):
    app, _services = idp
    with app.test_client() as client:
        response = client.get("/lang/de?next=/", headers={"Accept-Language": "fr"})
        assert response.status_code in (302, 303)
        assert urlsplit(response.headers["Location"]).path == "/"
        with client.session_transaction() as session:
            assert session["lang"] == "de"
        # Later requests stay German even though the browser prefers French.
        assert_language(page(client.get("/", headers={"Accept-Language": "fr"})), "de")
        # The switcher links to the other languages, keeping the current page.
        text = page(client.get("/", headers={"Accept-Language": "fr"}))
        assert '<strong lang="de">de</strong>' in text
        assert 'href="/lang/nl?next=/"' in text


def test_language_switch_keeps_next_path(idp):
    app, _services = idp
    with app.test_client() as client:
        response = client.get("/lang/nl?next=/healthz")
        assert response.status_code in (302, 303)
        assert urlsplit(response.headers["Location"]).path == "/healthz"


def test_unknown_language_is_ignored(idp):
    app, _services = idp
    with app.test_client() as client:
        response = client.get("/lang/xx?next=/")
        assert response.status_code in (302, 303)
        with client.session_transaction() as session:
            assert "lang" not in session
        assert_language(page(client.get("/", headers={"Accept-Language": "nl"})), "nl")
        # An unknown code does not undo a previous choice either.
        client.get("/lang/en?next=/")
        client.get("/lang/../de?next=/")
        client.get("/lang/EN-evil?next=/")
        with client.session_transaction() as session:
            assert session["lang"] == "en"
        assert_language(page(client.get("/", headers={"Accept-Language": "nl"})), "en")


@pytest.mark.parametrize("target", [
    "//evil.example",
    "//evil.example/",
    "https://evil.example",
    "https://evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "evil.example",
    "",
    "/\t/evil.example",        # a browser drops the TAB: //evil.example
    "/\n/evil.example",
    "/\r\n/x",
    "/\x00/x",
    "/\u3000/evil.example",
    "/%09/evil.example",       # a path of no page of Sésame's
    "/nowhere",
    "/logout",                 # a page that only answers POST
    "/" + "a" * 5000,
])
def test_language_switch_is_not_an_open_redirect(idp, target):
    app, _services = idp
    with app.test_client() as client:
        response = client.get("/lang/de", query_string={"next": target})
        assert response.status_code in (302, 303)
        location = urlsplit(response.headers["Location"])
        assert location.netloc in ("", "localhost")
        assert location.scheme in ("", "http")
        assert location.path == "/" and response.headers["Location"] in ("/", "http://localhost/")
        # The language is still switched: only the redirect target is refused.
        with client.session_transaction() as session:
            assert session["lang"] == "de"


def test_error_messages_are_translated(idp):
    app, _services = idp
    cases = {
        "fr": ("Ce service en ligne n'est pas connu de Sésame.", "Réessayez dans 15 minutes."),
        "nl": ("niet bekend", "Probeer het over 15 minuten opnieuw."),
        "de": ("nicht bekannt", "in 15 Minuten erneut"),
        "en": ("not known", "Try again in 15 minutes."),
    }
    for lang, (unknown, blocked) in cases.items():
        with app.test_request_context("/", headers={"Accept-Language": lang}):
            assert unknown in error_message("unknown_portal")
            assert blocked in error_message("account_blocked", {"minutes": 15})
    with app.test_request_context("/", headers={"Accept-Language": "nl"}):
        assert error_message("unknown_portal") == "Deze online dienst is niet bekend bij Sésame."


def test_language_switch_goes_back_to_a_page_of_sesame(idp):
    app, _services = idp
    with app.test_client() as client:
        response = client.get("/lang/nl", query_string={"next": "/login/password/?tx=abc"})
        assert response.headers["Location"].endswith("/login/password/?tx=abc")
