"""The registration office (bureau d'enregistrement local, docs/office.md).

Officers' pages (``/office/``, ``/office/<CODE>/...``): a person logged in at
``[office] officer_level`` (the eID or itsme) holding an officer role for the
office registers people seen in person, lists the registrations, re-issues an
activation code or a token.  The activation code is shown once, on the answer
to the POST that made it (every page is ``no-store``), then only its HMAC is kept.

The citizen's pages (``/office/activation/...``, the guide's "Activer votre clé
numérique"): the e-mail's link, the activation code (3 attempts), the key,
language, terms and username + password, then the key's own activation
wizard, run by the journey engine for the person the redeemed code names
(``Engine.activation(granted_fedid=...)``, only from here, only for a grant
this browser holds), ending logged out.
"""
from __future__ import annotations

import dataclasses
import functools
import secrets

from flask import Blueprint, Response, current_app, redirect, request, session, url_for
from flask_babel import force_locale, gettext as _, lazy_gettext as _l
from flask_login import current_user

from adapters.base import Group
from idp.messages import KEY_NAMES
from idp.messaging import DeliveryFailed
from idp.office import codes, forms
from idp.office.forms import Refused
from idp.office.registry import ERRORS_BY_STATUS, PENDING, Grant, Issued, RegistrationOffice
from idp.people.credentials import PASSWORD_KEY
from idp.views.account import MAX_INPUT, audit, day, login_page, new_password_problem, page
from idp.views.http import engine, http_input, render, services

bp = Blueprint("office", __name__, url_prefix="/office")

GRANT = "office_grant"            # the Flask session's key and the state store's prefix
GRANT_KEY = "office_grant_key"    # the key chosen with the grant (the done page names it)
ACTIVATION_KEYS = ("totp", "sms_code", "token")  # the guide's three; the others need no office
RECOMMENDED = ("totp", "sms_code")               # "Il est recommandé d'installer ... application mobile ou SMS"
TERMS = (
    _l("Les présentes conditions d'usage règlent l'utilisation des clés numériques de Sésame pour vous "
       "identifier auprès de l'administration en ligne."),
    _l("Votre clé numérique est personnelle. Ne communiquez à personne votre nom d'utilisateur, votre mot de "
       "passe, vos codes de sécurité ni votre code d'activation."),
    _l("Signalez sans délai la perte ou le vol d'une clé numérique : supprimez-la dans « Mes clés numériques » "
       "ou rendez-vous au bureau d'enregistrement."),
    _l("Toute identification faite avec votre clé numérique est réputée faite par vous."),
    _l("Vos données d'identification sont traitées uniquement pour vous identifier et sont protégées "
       "conformément au règlement général sur la protection des données (RGPD)."),
)


def office() -> RegistrationOffice:
    """One per application, from its services (settings ``[office]``)."""
    extensions = current_app.extensions
    if "sesame.office" not in extensions:
        extensions["sesame.office"] = RegistrationOffice.from_services(services())
    return extensions["sesame.office"]


def officer_level() -> int:
    return int(services().settings["office"]["officer_level"])


# --- officers ---------------------------------------------------------------------------
def officer_session(view):
    """Logged in at ``officer_level``: else the page offering the strong login (audited)."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        needed = officer_level()
        if not current_user.is_authenticated:
            return login_page(level=needed, code="login_required")
        if current_user.level < needed:
            audit("office.access_refused", "officer_level", level=current_user.level, path=request.path)
            return login_page(level=needed, code="officer_level", status=403)
        return view(*args, **kwargs)
    return wrapped


def officer(view):
    """An officer of the office ``code`` of the URL (the view gets its ``OfficeInfo``)."""
    @functools.wraps(view)
    @officer_session
    def wrapped(code: str, *args, **kwargs):
        found = office().office(code)
        if found is None or not office().is_officer(code, current_user.fedid):
            audit("office.access_refused", "not_an_officer", office=code[:32])
            return page("office/refused.html", 403, error="not_an_officer")
        return view(found, *args, **kwargs)
    return wrapped


def send_activation(issued: Issued) -> None:
    """The activation e-mail, in the person's language: the link, never the code (that one is on paper)."""
    s = services()
    if s.mailer is None:
        raise DeliveryFailed("no mailer configured")
    link = s.settings.base_url + url_for("office.activation", link=issued.link)
    with force_locale(issued.lang):
        subject = _("Activez votre clé numérique")
        text = "\n\n".join([
            _("Bonjour %(name)s,", name=issued.name),
            _("Vous avez été enregistré(e) au bureau d'enregistrement « %(office)s ».", office=issued.office),
            _("Pour activer votre clé numérique, ouvrez ce lien et indiquez le code d'activation que l'agent vous "
              "a remis sur papier :"),
            link,
            _("Ce lien et ce code sont valables jusqu'au %(date)s. Vous disposez de 3 tentatives pour introduire "
              "le code.", date=day(issued.expires_at)),
            _("Ceci est un message automatique de Sésame : n'y répondez pas."),
        ])
    s.mailer.send(to=issued.mail, subject=subject, text=text)


@bp.get("/")
@officer_session
def index():
    return page("office/index.html", offices=office().offices_of(current_user.fedid))


def form_values() -> dict:
    languages = current_app.config["SESAME_LANGUAGES"]
    return {"document_types": forms.DOCUMENT_TYPES, "languages": languages}


@bp.route("/<code>/register", methods=["GET", "POST"])
@officer
def register(found):
    values = {"office": found, **form_values()}
    if request.method == "GET":
        return page("office/register.html", typed={}, **values)
    typed = {f: (request.form.get(f) or "")[:300] for f in forms.FIELDS}
    event = "office.registration_refused"
    try:
        new = forms.new_person(request.form, today=office().now().date(), languages=values["languages"])
        issued = office().register(office_code=found.code, officer_fedid=current_user.fedid, new=new,
                                   send=send_activation)
    except Refused as exc:
        status = 409 if exc.code in ("duplicate_document", "nrn_registered") else 400
        audit(event, exc.code, office=found.code, field=exc.field)
        return page("office/register.html", status, error=exc.code, bad_field=exc.field, typed=typed, **values)
    except DeliveryFailed as exc:  # nothing was written: the transaction holds the sending
        audit(event, "activation_mail_failed", office=found.code, reason=str(exc)[:200])
        return page("office/register.html", 503, error="activation_mail_failed", typed=typed, **values)
    audit("office.registered", office=found.code, registration=issued.registration_id,
          registered_fedid=issued.person_fedid, doc_type=new.doc_type, doc_country=new.doc_country,
          bis=new.nrn is None)
    return page("office/issued.html", office=found, issued=issued, code=codes.shown(issued.code),
                expires=day(issued.expires_at), reissued=False)


@bp.get("/<code>/registrations")
@officer
def registrations(found):
    return page("office/registrations.html", office=found, rows=office().registrations(found.code),
                token="token" in services().adapters, day=day)


@bp.post("/<code>/registrations/<int:rid>/code")
@officer
def reissue_code(found, rid: int):
    try:
        issued = office().reissue(office_code=found.code, registration_id=rid, officer_fedid=current_user.fedid,
                                  send=send_activation)
    except DeliveryFailed as exc:
        audit("office.reissue_refused", "activation_mail_failed", office=found.code, registration=rid,
              reason=str(exc)[:200])
        return page("office/refused.html", 503, error="activation_mail_failed", office=found)
    if issued is None:
        audit("office.reissue_refused", "no_such_registration", office=found.code, registration=rid)
        return page("office/refused.html", 404, error="no_such_registration", office=found)
    audit("office.code_reissued", office=found.code, registration=rid, registered_fedid=issued.person_fedid)
    return page("office/issued.html", office=found, issued=issued, code=codes.shown(issued.code),
                expires=day(issued.expires_at), reissued=True)


@bp.post("/<code>/registrations/<int:rid>/token")
@officer
def reissue_token(found, rid: int):
    """A new paper token (the token key's ``issue_card``: the old card dies at once, the PDF goes by mail)."""
    adapter = services().adapters.get("token")
    if adapter is None or not hasattr(adapter, "issue_card"):
        audit("office.reissue_refused", "token_unavailable", office=found.code, registration=rid)
        return page("office/refused.html", 404, error="token_unavailable", office=found)
    row = office().registration(found.code, rid)
    if row is None:
        audit("office.reissue_refused", "no_such_registration", office=found.code, registration=rid)
        return page("office/refused.html", 404, error="no_such_registration", office=found)
    try:
        card = adapter.issue_card(engine().ports_for(adapter), row.person_fedid, lang=row.lang)
    except LookupError:  # another card issued at the same instant
        audit("office.reissue_refused", "office_conflict", office=found.code, registration=rid)
        return page("office/refused.html", 409, error="office_conflict", office=found)
    audit("office.token_reissued", key="token", office=found.code, registration=rid,
          registered_fedid=row.person_fedid)
    record = services().credentials.of_person(key="token", person_fedid=row.person_fedid)
    # The key's own one-time printable page (the PDF went by mail); never logged nor kept.
    return page("token/card.html", codes=card, serial=record.data.get("serial", "") if record else "")


# --- the citizen's activation --------------------------------------------------------------
def closed(code: str, *, fedid: str | None = None, status: int = 410, **detail):
    """Nothing more to do with this link or grant: the reason, and the way back to the office."""
    audit("office.activation_refused", code, person_fedid=fedid, **detail)
    return page("office/activation_closed.html", 404 if code == "activation_link_unknown" else status, error=code)


@bp.route("/activation/<link>", methods=["GET", "POST"])
def activation(link: str):
    """"Indiquer le code d'activation": 3 attempts, counted in the database."""
    if request.method == "GET":
        status, left, fedid = office().link_state(link)
        if status != PENDING:
            return closed(ERRORS_BY_STATUS[status], fedid=fedid)
        return page("office/activation_code.html", step=1, link=link, attempts_left=left)
    result = office().attempt(link, request.form.get("code"))
    if result.error in ("missing_activation_code", "bad_activation_code_format", "bad_activation_code"):
        audit("office.activation_refused", result.error, person_fedid=result.person_fedid,
              attempts_left=result.attempts_left)
        return page("office/activation_code.html", 401 if result.error == "bad_activation_code" else 400,
                    error=result.error, params={"attempts_left": result.attempts_left}, link=link, step=1,
                    attempts_left=result.attempts_left)
    if result.error:
        return closed(result.error, fedid=result.person_fedid)
    s = services()
    gid = secrets.token_urlsafe(24)  # the grant lives in the store; this browser's signed session names it
    s.store.put(f"{GRANT}:{gid}", dataclasses.asdict(result.grant),
                ttl=60 * int(s.settings["office"]["grant_minutes"]))
    session[GRANT] = gid
    audit("office.code_redeemed", person_fedid=result.grant.person_fedid, registration=result.grant.registration_id)
    return redirect(url_for("office.choose_key"), code=303)


def current_grant() -> Grant | None:
    """This browser's grant, while its code is redeemed and not yet spent on a key."""
    gid = session.get(GRANT)
    data = services().store.get(f"{GRANT}:{gid}") if isinstance(gid, str) else None
    if not isinstance(data, dict):
        return None
    grant = Grant(code_id=int(data["code_id"]), registration_id=int(data["registration_id"]),
                  person_fedid=str(data["person_fedid"]))
    return grant if office().granted(grant) else None


def activatable(person_fedid: str) -> list[str]:
    """The guide's keys this person can activate now (enabled, with a wizard, not yet set up)."""
    ready = engine().activatable_keys(person_fedid)
    return [k for k in ACTIVATION_KEYS if k in ready]


@bp.route("/activation/key", methods=["GET", "POST"])
def choose_key():
    """"Choisissez votre clé numérique": the key, the language, the terms, the username + password."""
    s = services()
    grant = current_grant()
    if grant is None:
        return closed("activation_grant_expired")
    keys = activatable(grant.person_fedid)
    if not keys:
        return closed("no_activatable_key", fedid=grant.person_fedid, status=409)
    languages = current_app.config["SESAME_LANGUAGES"]
    contact = s.contacts.get(grant.person_fedid)
    values = {"step": 2, "keys": keys, "recommended": RECOMMENDED, "names": KEY_NAMES, "languages": languages,
              "needs_password": not s.credentials.has_active(key=PASSWORD_KEY, person_fedid=grant.person_fedid)}
    if request.method == "GET":
        return page("office/activation_key.html", chosen=None, lang=contact.lang, username="", **values)
    key, lang = request.form.get("key") or "", request.form.get("lang") or ""
    username = (request.form.get("username") or "")[:MAX_INPUT]
    shown = {"chosen": key, "lang": lang if lang in languages else contact.lang, "username": username.strip()[:200]}

    def refuse(code: str, params: dict | None = None):
        audit("office.activation_refused", code, person_fedid=grant.person_fedid, key=key[:32] or None)
        return page("office/activation_key.html", 400, error=code, params=params, **shown, **values)

    if key not in keys:
        return refuse("activation_key_choice")
    if lang not in languages:
        return refuse("bad_language")
    if request.form.get("terms") != "yes":
        return refuse("terms_not_accepted")
    new_password = None
    if values["needs_password"]:
        new, again = (request.form.get("password") or "")[:MAX_INPUT], request.form.get("confirm") or ""
        problem = s.credentials.username_problem(username)
        if problem:
            return refuse(problem)
        problem = new_password_problem(new, again, username) if new else ("missing_fields", {})
        if problem:
            return refuse(*problem)
        new_password = (username, new)
    try:
        office().prepare(grant, lang=lang, new_password=new_password)
    except Refused as exc:
        if exc.code == "activation_used":
            return closed(exc.code, fedid=grant.person_fedid)
        return refuse(exc.code)
    session["lang"] = lang
    session[GRANT_KEY] = key
    audit("office.activation_started", key=key, person_fedid=grant.person_fedid)
    # The key's own wizard, for this person, without a session; back to `activated` when it succeeds.
    return render(engine().activation(key=key, done_url=url_for("office.activated"),
                                      http=http_input(create_browser=True), granted_fedid=grant.person_fedid))


@bp.get("/activation/done")
def activated():
    """"Votre clé a été créée avec succès": the code spent, the browser logged out (as the guide shows)."""
    s = services()
    grant, key = current_grant(), session.get(GRANT_KEY)
    if grant is None or key not in ACTIVATION_KEYS:
        return closed("activation_grant_expired")
    if not s.credentials.has_active(key=key, person_fedid=grant.person_fedid):
        return redirect(url_for("office.choose_key"), code=303)  # the wizard was left before its end
    office().complete(grant)
    s.store.pop(f"{GRANT}:{session.pop(GRANT, '')}")
    session.pop(GRANT_KEY, None)
    sid = session.pop("sid", None)  # whoever was logged in in this browser is no longer
    if sid:
        s.sessions.end(sid)
    audit("office.activation_completed", key=key, person_fedid=grant.person_fedid)
    adapter = s.adapters.get(key)
    return page("office/activated.html", step=3, key=key, key_name=KEY_NAMES.get(key, key),
                needs_password=adapter is not None and adapter.group is Group.SECURITY_CODE)


@bp.get("/terms")
def terms():
    return page("office/terms.html", paragraphs=TERMS)


@bp.get("/terms.txt")
def terms_download():
    """"Téléchargez la convention d'utilisation": the same text, as a file."""
    text = _("Conditions d'usage des clés numériques de Sésame") + "\n\n" + "\n\n".join(str(p) for p in TERMS) + "\n"
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": "attachment; filename=conditions-usage-sesame.txt"})
