"""FSE 21-27, the example portal of the Agence FSE, as its guide shows it.

It receives names only, with a *transient* NameID (new at each login): the
portal cannot recognise a returning citizen by what Sésame sends.  Its guide's
part D gives the answer: after every login the citizen validates an e-mail
address, and that address is who they are here.  Organisations and roles hang
on it:

- the first user of an organisation creates it and is its "Gestionnaire du compte";
- the Gestionnaire grants and removes the three roles ("Gestionnaire du compte",
  "Encodeur", "Personne juridiquement responsable"; a person may hold several),
  naming colleagues by their e-mail address before they ever log in;
- an organisation always keeps one Gestionnaire.
"""
from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, abort, redirect, render_template, request, session, url_for

from sp_examples.common import (Clock, create_example_app, new_token, retire_tokens, token_table, translate,
                                use_token)
from sp_examples.portal import PortalSpec

ROLES = ("manager", "encoder", "legal")  # Gestionnaire du compte, Encodeur, Personne juridiquement responsable
MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def schema():
    metadata = sa.MetaData()
    organisations = sa.Table(
        "organisations", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    members = sa.Table(  # one organisation per person (by validated address), roles as flags
        "members", metadata,
        sa.Column("mail", sa.String(255), primary_key=True),
        sa.Column("organisation_id", sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("name", sa.String(255)),          # from Sésame, at the person's last login
        *(sa.Column(role, sa.Boolean, nullable=False, default=False) for role in ROLES),
    )
    return metadata, organisations, members, token_table(metadata)


def create_fse_app(spec: PortalSpec, config, *, idp_entity_id: str, data_dir: Path,
                   mail: dict | None = None, clock: Clock | None = None) -> Flask:
    metadata, organisations, members, tokens = schema()
    portal = create_example_app(spec, config, idp_entity_id=idp_entity_id, data_dir=data_dir, database="fse.sqlite",
                                metadata=metadata, brand="fse_brand", mail=mail, clock=clock)
    app, engine, clock, mailer, current_user = (portal.app, portal.engine, portal.clock, portal.mailer,
                                                portal.current_user)

    def full_name(user) -> str:
        attributes = user["attributes"]
        return " ".join(filter(None, [(attributes.get("givenName") or [""])[0], (attributes.get("surname") or [""])[0]]))

    def verified_mail(user):
        """The address validated in this session, for this very login (transient NameID)."""
        verified = session.get("verified")
        return verified["mail"] if verified and verified["nameid"] == user["nameid"] else None

    def send_link(user, address):
        retire_tokens(engine, tokens, user["nameid"])
        token = new_token(engine, tokens, now=clock.now(), purpose="verify", subject=user["nameid"], mail=address)
        mailer.send(address, translate("fse_mail_subject"), translate(
            "fse_mail_body", name=full_name(user), link=url_for("verify", token=token, _external=True)))

    @app.route("/bienvenue", methods=["GET", "POST"])
    def welcome():
        """Part D, step 1-2: enter the address; a validation e-mail; resend."""
        user = current_user()
        if user is None:
            return redirect(url_for("home"))
        if verified_mail(user):
            return redirect(url_for("application"))
        error, sent = None, session.get("sent_to")
        if request.method == "POST":
            address = request.form.get("mail", "").strip().lower() or (sent or "")
            if not MAIL.match(address):
                error = translate("mail_invalid")
            else:
                send_link(user, address)
                session["sent_to"] = sent = address
                return render_template("fse/welcome.html", name=full_name(user), sent=sent,
                                       resent=request.form.get("resend") == "1")
        return render_template("fse/welcome.html", name=full_name(user), sent=sent, error=error), \
            400 if error else 200

    @app.get("/valider/<token>")
    def verify(token):
        """Part D, step 4: "Validation de l'adresse e-mail".  The link proves the
        address *for this login*: it must be opened where that login happened."""
        user = current_user()
        with engine.connect() as db:
            row = db.execute(tokens.select().where(tokens.c.token == token)).first()
        if row is not None and (user is None or row.subject != user["nameid"]):
            return render_template("message.html", title=translate("fse_mail_subject"),
                                   text=translate("fse_other_browser")), 403
        row = use_token(engine, tokens, token, now=clock.now(), purposes=("verify",))
        if row is None:
            return render_template("message.html", title=translate("fse_mail_subject"),
                                   text=translate("link_invalid")), 410
        session["verified"] = {"nameid": user["nameid"], "mail": row.mail}
        session.pop("sent_to", None)
        with engine.begin() as db:  # keep the name shown to colleagues current
            db.execute(members.update().where(members.c.mail == row.mail).values(name=full_name(user)))
        return redirect(url_for("application"), code=303)  # step 5: straight to the application

    def me():
        """(user, address, member row or None), or a redirect to the missing step."""
        user = current_user()
        if user is None:
            return None, None, None, redirect(url_for("home"))
        address = verified_mail(user)
        if address is None:
            return user, None, None, redirect(url_for("welcome"))
        with engine.connect() as db:
            member = db.execute(members.select().where(members.c.mail == address)).first()
        return user, address, member, None

    @app.route("/application", methods=["GET", "POST"])
    def application():
        user, address, member, out = me()
        if out:
            return out
        error = None
        if member is None and request.method == "POST":  # "Vous pouvez maintenant créer votre organisation"
            name = request.form.get("organisation", "").strip()
            if not name:
                error = translate("org_name_missing")
            else:
                with engine.begin() as db:
                    org_id = db.execute(organisations.insert().values(name=name)).inserted_primary_key[0]
                    db.execute(members.insert().values(mail=address, organisation_id=org_id, name=full_name(user),
                                                       manager=True, encoder=False, legal=False))
                return redirect(url_for("application"), code=303)
        if member is None:
            return render_template("fse/create.html", error=error), 400 if error else 200
        with engine.connect() as db:
            organisation = db.execute(organisations.select().where(organisations.c.id == member.organisation_id)).first()
            people = db.execute(members.select().where(members.c.organisation_id == member.organisation_id)
                                .order_by(members.c.mail)).all()
        notice = {"saved": translate("roles_saved"), "last": translate("last_manager"),
                  "other": translate("other_org"), "invalid": translate("mail_invalid")}.get(request.args.get("n"))
        return render_template("fse/application.html", organisation=organisation, me=member, people=people,
                               roles=ROLES, notice=notice)

    @app.post("/roles")
    def set_roles():
        """The Gestionnaire du compte grants and removes roles; a person left with
        none leaves the organisation; the last Gestionnaire cannot be removed."""
        user, address, member, out = me()
        if out:
            return out
        if member is None or not member.manager:
            abort(403)
        target = request.form.get("mail", "").strip().lower()
        if not MAIL.match(target):
            return redirect(url_for("application", n="invalid"), code=303)
        wanted = {role: request.form.get(role) == "on" for role in ROLES}
        org = member.organisation_id
        with engine.begin() as db:
            existing = db.execute(members.select().where(members.c.mail == target)).first()
            if existing is not None and existing.organisation_id != org:
                return redirect(url_for("application", n="other"), code=303)
            if existing is not None and existing.manager and not wanted["manager"]:
                others = db.execute(sa.select(sa.func.count()).select_from(members).where(
                    members.c.organisation_id == org, members.c.manager.is_(True), members.c.mail != target)).scalar()
                if others == 0:
                    return redirect(url_for("application", n="last"), code=303)
            if not any(wanted.values()):
                db.execute(members.delete().where(members.c.mail == target))
            elif existing is None:
                db.execute(members.insert().values(mail=target, organisation_id=org, **wanted))
            else:
                db.execute(members.update().where(members.c.mail == target).values(**wanted))
        return redirect(url_for("application", n="saved"), code=303)

    return app
