"""Languages (fr first, nl, de, en): Flask-Babel set-up and the language choice.

The chosen language lives in the session cookie and is released as
``PrefLanguage``.  Catalogs are compiled from the .po files at start when the
.mo files are missing or older, so a fresh clone needs no build step.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import request, session
from flask_babel import Babel, get_locale

TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"


def compile_catalogs(directory: Path = TRANSLATIONS) -> None:
    for po in directory.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh)
        tmp = mo.with_suffix(f".mo.{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as fh:
            write_mo(fh, catalog)
        tmp.replace(mo)


def current_language(languages: list[str], default: str) -> str:
    lang = session.get("lang")
    if lang in languages:
        return lang
    return request.accept_languages.best_match(languages) or default


def init_i18n(app, settings) -> None:
    compile_catalogs()
    languages, default = settings.languages, settings["i18n"]["default"]
    app.config["BABEL_DEFAULT_LOCALE"] = default
    app.config["SESAME_LANGUAGES"] = languages
    Babel(app, locale_selector=lambda: current_language(languages, default),
          default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.globals["get_locale"] = get_locale
