"""What the two example portals share beyond SAML: the application's frame
(``create_example_app``: its data, SAML, the pages every portal has), a clock
tests can move, a small SMTP mailer, single-use e-mail tokens, the language
switch and the human messages for every SAML status a portal can receive.

Reference code: an integrator copies from it, so it stays small and plain.
"""
from __future__ import annotations

import datetime as dt
import secrets
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage

from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from flask import Flask, abort, redirect, render_template, request, session, url_for

from sp_examples.messages import LANGUAGES, MESSAGES

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


class Clock:
    """The wall clock; tests move it (``advance``) to see 30 days pass in a second."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + self.offset

    def advance(self, **delta) -> None:
        self.offset += dt.timedelta(**delta)


@dataclass
class Mailer:
    """Sends the portal's own e-mails.  ``host`` None (the demo without a mail
    server): the messages are kept in ``outbox`` and shown at /outbox instead."""

    host: str | None = None
    port: int = 25
    sender: str = "Portail <no-reply@portal.test>"
    outbox: list = field(default_factory=list)

    def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message.set_content(text)
        if self.host is None:
            self.outbox.append(message)
            return
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)


def mailer_from(settings: dict | None) -> Mailer:
    """``{"host": ..., "port": ..., "sender": ...}`` → a Mailer; None → the demo outbox."""
    return Mailer(**(settings or {}))


# --- single-use tokens --------------------------------------------------------------
# One table for every link sent by e-mail.  A token is used by one UPDATE that
# also checks it is unused and unexpired: two clicks at once, one wins (SQLite
# and PostgreSQL both apply the UPDATE atomically).
def migrate(engine, steps) -> int:
    """The portal's migrations: numbered steps (functions of a connection), each applied
    once, in order, in one transaction, the version kept in SQLite's ``user_version``.
    A portal of this size needs no Alembic; a new column is one more step at the end
    of the list, never an edit of an old one.  Returns the version reached."""
    with engine.begin() as conn:
        version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
        for number, step in enumerate(steps, start=1):
            if number > version:
                step(conn)
                conn.exec_driver_sql(f"PRAGMA user_version = {int(number)}")
    return len(steps)


def token_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "tokens", metadata,
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(20), nullable=False),      # activate, cancel, change_mail, verify
        sa.Column("subject", sa.String(255), nullable=False),     # whose (account key)
        sa.Column("mail", sa.String(255), nullable=False),        # the address it proves
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False, default=False),
    )


TOKEN_LIFETIME = dt.timedelta(hours=24)


def new_token(engine, tokens: sa.Table, *, now: dt.datetime, purpose: str, subject: str, mail: str) -> str:
    token = secrets.token_urlsafe(32)
    with engine.begin() as db:
        db.execute(tokens.insert().values(token=token, purpose=purpose, subject=subject, mail=mail,
                                          expires_at=now + TOKEN_LIFETIME, used=False))
    return token


def use_token(engine, tokens: sa.Table, token: str, *, now: dt.datetime, purposes: tuple[str, ...]):
    """The token's row when this call used it; None when unknown, used or expired."""
    with engine.begin() as db:
        row = db.execute(tokens.select().where(tokens.c.token == token)).first()
        if row is None or row.purpose not in purposes:
            return None
        done = db.execute(tokens.update().where(
            tokens.c.token == token, tokens.c.used.is_(False), tokens.c.expires_at > now).values(used=True))
        return row if done.rowcount == 1 else None


def retire_tokens(engine, tokens: sa.Table, subject: str) -> None:
    """A new link makes the older ones of the same person useless (resend, new address)."""
    with engine.begin() as db:
        db.execute(tokens.update().where(tokens.c.subject == subject).values(used=True))


# --- languages ------------------------------------------------------------------------
def language() -> str:
    """?lang= (remembered in the session), else the browser's choice, else French."""
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return session.get("lang") or request.accept_languages.best_match(LANGUAGES) or "fr"


def translate(key: str, **values) -> str:
    lang = language()
    text = MESSAGES[key].get(lang) or MESSAGES[key]["fr"]
    return text.format(**values) if values else text


# pysaml2 raises one StatusError subclass per second-level status; the portal
# shows a sentence, never the class name.  Sésame answers AuthnFailed when the
# citizen clicks "Annuler" on its login page.
STATUS_MESSAGES = {
    "StatusAuthnFailed": "status_cancelled",
    "StatusNoPassive": "status_no_passive",
    "StatusNoAuthnContext": "status_no_authn_context",
    "StatusRequestDenied": "status_request_denied",
    "StatusUnknownPrincipal": "status_unknown_principal",
    "StatusInvalidNameidPolicy": "status_invalid_nameid_policy",
}


def status_message(error: str | None) -> str | None:
    if not error:
        return None
    return translate(STATUS_MESSAGES.get(error, "status_other"))



def human_date(value: str) -> str:
    """A birth date as a citizen reads it, 14/03/1985: Sésame sends birthDate as
    1985-03-14 (xs:date), some IdPs as a GeneralizedTime (19850314000000Z)."""
    digits = value.replace("-", "")
    if len(digits) >= 8 and digits[:8].isdigit():
        return f"{digits[6:8]}/{digits[4:6]}/{digits[0:4]}"
    return value


@dataclass
class ExamplePortal:
    """One example portal's application and what its own pages work with."""

    app: Flask
    engine: Any
    clock: Clock
    mailer: Mailer
    current_user: Callable[[], dict | None]


def create_example_app(spec, config, *, idp_entity_id: str, data_dir: Path, database: str,
                       metadata: sa.MetaData, brand: str, mail: dict | None, clock: Clock | None) -> ExamplePortal:
    """The frame both example portals share: a Flask app on ``sp_examples/templates``;
    its SQLite data (``data_dir/database``) brought up by numbered migrations (1: the
    tables of ``metadata``); the SAML routes (``portal.add_saml_routes``); the page
    helpers (``brand``: the message key of the header's name); and the pages every portal has: home (``<spec.app>/home.html``, with the
    human sentence of a SAML status or of the logout), help, the logout confirmation
    and, in the demo without a mail server, the outbox."""
    from sp_examples.portal import add_saml_routes  # portal.py knows nothing of this module

    name = spec.app
    app = Flask(f"sp_examples.{name}", template_folder=str(TEMPLATES), static_folder=str(STATIC))
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_NAME=f"{spec.slug}_session",
                      SESSION_COOKIE_SAMESITE="Lax")
    clock = clock or Clock()
    mailer = mailer_from(mail)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{data_dir / database}")
    migrate(engine, [metadata.create_all])
    app.extensions[name] = {"engine": engine, "clock": clock, "mailer": mailer}
    app.add_template_filter(human_date, "human_date")
    current_user = add_saml_routes(app, spec, config, idp_entity_id=idp_entity_id,
                                   autopost_template="autopost.html")

    @app.context_processor
    def helpers():
        return {"t": translate, "lang": language(), "languages": LANGUAGES, "portal": name,
                "brand": translate(brand), "user": current_user(),
                "outbox": mailer.host is None}

    @app.get("/")
    def home():
        logout = request.args.get("logout")
        return render_template(f"{name}/home.html", error=status_message(request.args.get("error")),
                               notice=translate("logged_out") if logout == "ok" else
                               translate("logout_failed") if logout == "failed" else None)

    @app.get("/aide")
    def help_page():
        return render_template("help.html")

    @app.get("/deconnexion")
    def logout_confirm():
        """Ask first: logging out here also ends Sésame's session and the other portals'."""
        if current_user() is None:
            return redirect(url_for("home"))
        return render_template("logout.html")

    @app.get("/outbox")
    def outbox():
        """The demo without a mail server: the portal's e-mails, readable here."""
        if mailer.host is not None:
            abort(404)
        return render_template("outbox.html", messages=list(reversed(mailer.outbox)))

    return ExamplePortal(app, engine, clock, mailer, current_user)
