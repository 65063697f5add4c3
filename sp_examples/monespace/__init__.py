"""Mon Espace, the example portal of the Fédération Wallonie-Bruxelles, as its
user guide shows it: home page, first-login account creation validated by
e-mail, "Mes espaces", the account page, deletion after 30 days of withdrawal.

What comes from Sésame (names, birth date, national number) is shown, never
edited here: Sésame is the source of the identity.  The account only adds what
the portal needs of its own: a private e-mail address, validated.

The citizen is known by the persistent NameID Sésame sends this portal (its
policy asks ``nameid_format = "persistent"``): stable across logins, and
meaningless to any other portal.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, redirect, render_template, request, url_for

from sp_examples.common import (Clock, create_example_app, new_token, retire_tokens, token_table, translate,
                                use_token)
from sp_examples.portal import PortalSpec

WITHDRAWAL = dt.timedelta(days=30)   # the guide's delay before a deletion is final
MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def schema():
    metadata = sa.MetaData()
    accounts = sa.Table(
        "accounts", metadata,
        sa.Column("subject", sa.String(255), primary_key=True),   # Sésame's persistent NameID
        sa.Column("mail", sa.String(255)),                        # validated private address
        sa.Column("pending_mail", sa.String(255)),                # waiting for its link
        sa.Column("active", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("deletion_requested_at", sa.DateTime),          # set: deleted after WITHDRAWAL
    )
    return metadata, accounts, token_table(metadata)


def first(attributes: dict, name: str) -> str:
    return (attributes.get(name) or [""])[0]


def create_monespace_app(spec: PortalSpec, config, *, idp_entity_id: str, data_dir: Path,
                         mail: dict | None = None, clock: Clock | None = None) -> Flask:
    metadata, accounts, tokens = schema()
    portal = create_example_app(spec, config, idp_entity_id=idp_entity_id, data_dir=data_dir,
                                database="monespace.sqlite", metadata=metadata, brand="me_brand", mail=mail,
                                clock=clock)
    app, engine, clock, mailer, current_user = (portal.app, portal.engine, portal.clock, portal.mailer,
                                                portal.current_user)

    def account_of(subject):
        with engine.connect() as db:
            return db.execute(accounts.select().where(accounts.c.subject == subject)).first()

    def purge() -> int:
        """Delete the accounts whose withdrawal period is over (also `purge_expired`)."""
        with engine.begin() as db:
            gone = db.execute(accounts.delete().where(
                accounts.c.deletion_requested_at <= clock.now() - WITHDRAWAL)).rowcount
            db.execute(tokens.delete().where(tokens.c.expires_at <= clock.now() - WITHDRAWAL))
        return gone

    app.extensions["monespace"]["purge"] = purge

    @app.before_request
    def purge_before_request():
        purge()  # cheap (one indexed DELETE); a cron calling purge() does the same

    def send_activation(user, address):
        subject = user["nameid"]
        retire_tokens(engine, tokens, subject)
        now = clock.now()
        activate = new_token(engine, tokens, now=now, purpose="activate", subject=subject, mail=address)
        cancel = new_token(engine, tokens, now=now, purpose="cancel", subject=subject, mail=address)
        mailer.send(address, translate("me_mail_subject"), translate(
            "me_mail_body", name=first(user["attributes"], "givenName"),
            activate=url_for("activate", token=activate, _external=True),
            cancel=url_for("cancel", token=cancel, _external=True)))

    def login_required():
        user = current_user()
        if user is None:
            return None, redirect(url_for("home"))
        return user, None

    @app.route("/inscription", methods=["GET", "POST"])
    def signup():
        user, out = login_required()
        if out:
            return out
        account = account_of(user["nameid"])
        if account is not None and account.active:
            return redirect(url_for("spaces"))
        errors = {}
        if request.method == "POST":
            address = request.form.get("mail", "").strip()
            if not MAIL.match(address):
                errors["mail"] = translate("mail_invalid")
            elif address != request.form.get("mail_confirm", "").strip():
                errors["mail_confirm"] = translate("mails_differ")
            else:
                with engine.begin() as db:
                    if account is None:
                        db.execute(accounts.insert().values(subject=user["nameid"], pending_mail=address,
                                                            active=False, created_at=clock.now()))
                    else:
                        db.execute(accounts.update().where(accounts.c.subject == user["nameid"])
                                   .values(pending_mail=address))
                send_activation(user, address)
                return redirect(url_for("pending"), code=303)
        return render_template("monespace/signup.html", errors=errors, form=request.form)

    @app.route("/inscription/envoye", methods=["GET", "POST"])
    def pending():
        user, out = login_required()
        if out:
            return out
        account = account_of(user["nameid"])
        if account is None or not account.pending_mail:
            return redirect(url_for("signup"))
        resent = False
        if request.method == "POST":  # "Demander un nouveau courriel de validation"
            send_activation(user, account.pending_mail)
            resent = True
        return render_template("monespace/pending.html", mail=account.pending_mail, resent=resent)

    @app.get("/activer/<token>")
    def activate(token):
        """The e-mail's link (first address or a new one): works in any browser, once."""
        row = use_token(engine, tokens, token, now=clock.now(), purposes=("activate", "change_mail"))
        if row is None:
            return render_template("message.html", title=translate("validated_title"),
                                   text=translate("link_invalid")), 410
        with engine.begin() as db:
            db.execute(accounts.update().where(accounts.c.subject == row.subject)
                       .values(mail=row.mail, pending_mail=None, active=True))
        retire_tokens(engine, tokens, row.subject)  # the "cancel" link dies with it
        if row.purpose == "change_mail":
            return render_template("message.html", title=translate("account"),
                                   text=translate("mail_changed"))
        return render_template("monespace/validated.html")

    @app.get("/annuler/<token>")
    def cancel(token):
        row = use_token(engine, tokens, token, now=clock.now(), purposes=("cancel",))
        if row is None:
            return render_template("message.html", title=translate("signup_title"),
                                   text=translate("link_invalid")), 410
        with engine.begin() as db:  # only a never-activated account is removed this way
            db.execute(accounts.delete().where(accounts.c.subject == row.subject, accounts.c.active.is_(False)))
        retire_tokens(engine, tokens, row.subject)
        return render_template("message.html", title=translate("signup_title"),
                               text=translate("signup_cancelled"))

    def active_account():
        """(user, account, None) for an activated account, else (.., .., a redirect)."""
        user, out = login_required()
        if out:
            return None, None, out
        account = account_of(user["nameid"])
        if account is None or not account.active:
            return user, account, redirect(url_for("signup"))
        return user, account, None

    @app.get("/espaces")
    def spaces():
        user, account, out = active_account()
        if out:
            return out
        return render_template("monespace/spaces.html", account=account)

    @app.route("/compte", methods=["GET", "POST"])
    def account_page():
        user, account, out = active_account()
        if out:
            return out
        errors, notice = {}, None
        action = request.form.get("action")
        if action == "change_mail":
            address = request.form.get("mail", "").strip()
            if not MAIL.match(address):
                errors["mail"] = translate("mail_invalid")
            elif address != request.form.get("mail_confirm", "").strip():
                errors["mail_confirm"] = translate("mails_differ")
            else:  # the old address stays until the new one is proven
                retire_tokens(engine, tokens, user["nameid"])
                token = new_token(engine, tokens, now=clock.now(), purpose="change_mail",
                                  subject=user["nameid"], mail=address)
                mailer.send(address, translate("change_subject"), translate(
                    "change_body", name=first(user["attributes"], "givenName"),
                    activate=url_for("activate", token=token, _external=True)))
                notice = translate("change_mail_sent", mail=address)
        elif action in ("delete", "withdraw"):
            when = clock.now() if action == "delete" else None
            with engine.begin() as db:
                db.execute(accounts.update().where(accounts.c.subject == user["nameid"])
                           .values(deletion_requested_at=when))
            notice = translate("withdrawn") if action == "withdraw" else None
            account = account_of(user["nameid"])
        deletion_date = None
        if account.deletion_requested_at:
            deletion_date = (account.deletion_requested_at + WITHDRAWAL).strftime("%d/%m/%Y")
        return render_template("monespace/account.html", account=account, errors=errors, notice=notice,
                               deletion_date=deletion_date), 400 if errors else 200

    return app
