"""The citizen's own pages (the guide's "Comment gérer mes clés numériques"):
"Mes clés numériques" (status of each key, Activer, Modifier, Supprimer), the
username and password change, "Mon profil", "Mes sessions" (the portals this
browser is logged in to), and "Nom d'utilisateur et/ou mot de passe oublié(s)?".

Who is logged in is the SSO session (``session["sid"]``), read through
Flask-Login's request loader: pages need a session (``login_required``), and
changes need one at ``[account] manage_level``; without it the citizen gets a
page offering to log in (a journey ending back here), never an error.
Activating a key is the journey engine's (POST /journeys/activate/<key>): it
refuses a session below ``[account] activation_level`` itself.

Every refusal re-renders its form with the error code (``data-code``), in the
citizen's language, and is audited.
"""
from __future__ import annotations

import functools
import logging
import secrets
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import force_locale, gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from adapters.base import GROUP_ORDER, Group
from adapters.contacts import email_address
from adapters.lockout import digest
from adapters.one_time_code import CodePolicy
from adapters.password_check import ACCOUNT_BLOCKED, BAD_CREDENTIALS, PasswordCheck
from idp.errors import StoreUnavailable
from idp.messages import GROUPS, KEY_NAMES, error_message
from idp.messaging import DeliveryFailed
from idp.people.credentials import PASSWORD_KEY, UsernameUnavailable
from idp.persistence.models import Person
from idp.views.http import safe_next, services

log = logging.getLogger("sesame.account")
BRUSSELS = ZoneInfo("Europe/Brussels")
bp = Blueprint("account", __name__, url_prefix="/account")

MAX_INPUT = 1024              # characters of a typed password read (idp/people/password_policy.py refuses longer)
RECOVERY = "recovery"         # the codes' scope, the store's prefix, the Flask session's key
RECOVERY_POLICY = CodePolicy()  # 6 digits, 10 minutes, 5 attempts: the engine's defaults
RECOVERY_CHANNELS = (("email_code", "mailer"), ("sms_code", "sms"))  # keys whose proven address may get a code
CHECK_STATUS = {BAD_CREDENTIALS: 401, ACCOUNT_BLOCKED: 403, "rate_limited": 429, "busy": 503}


# --- who is logged in: Flask-Login over the SSO session ------------------------------
class Citizen(UserMixin):
    """The person of this browser's SSO session (never a row of its own: the session decides)."""

    def __init__(self, sso_session, person) -> None:
        self.sso = sso_session
        self.person = person

    def get_id(self) -> str:
        return self.sso.id

    @property
    def fedid(self) -> str:
        return self.person.fedid

    @property
    def level(self) -> int:
        return int(self.sso.level)


def load_citizen(_request) -> Citizen | None:
    """From the SSO session named by the cookie; an ended or expired one is nobody."""
    s = services()
    try:
        sso_session = s.sessions.get(session.get("sid"))
        person = s.people.get(sso_session.person_id) if sso_session else None
    except (StoreUnavailable, OperationalError):
        if g.get("rendering_error"):  # the error page's own header: nobody, rather than a second failure
            return None
        raise
    return Citizen(sso_session, person) if person is not None else None


def login_page(*, level: int = 0, code: str = "login_required", status: int = 401):
    """Not logged in (or not strongly enough): a page whose buttons start a login
    (POST /journeys/login) that ends back on the page asked for."""
    back = safe_next(request.full_path.rstrip("?") if request.method == "GET" else url_for("account.keys"))
    services().audit.log("account.login_needed", result=code, path=request.path, remote_addr=request.remote_addr)
    return render_template("account/login_needed.html", next_url=back, level=level, error_code=code,
                           error=error_message(code)), status


def init_login(app) -> None:
    """One Flask-Login manager per application, reading the SSO session."""
    manager = LoginManager(app)
    # The SSO session is the proof, renewed at every login; Flask-Login keeps nothing of its own.
    manager.session_protection = None
    manager.request_loader(load_citizen)
    manager.unauthorized_handler(login_page)


def managing(view):
    """Logged in, at ``[account] manage_level`` at least: what changing a key needs."""
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        needed = int(services().settings["account"]["manage_level"])
        if current_user.level < needed:
            return login_page(level=needed, code="manage_level", status=403)
        return view(*args, **kwargs)
    return wrapped


# --- helpers -------------------------------------------------------------------------
def audit(event: str, result: str = "ok", **detail) -> None:
    fedid = current_user.fedid if current_user and current_user.is_authenticated else None
    services().audit.record(event, result=result, person_fedid=detail.pop("person_fedid", fedid),
                            remote_addr=request.remote_addr, **detail)


def page(template: str, status: int = 200, *, error: str | None = None, params: dict | None = None, **values):
    """A page of this module, with its error (the code as ``data-code``, the text translated)."""
    text = error_message(error, params) if error else None
    return render_template(template, error_code=error, error=text, **values), status


def refused(template: str, event: str, code: str, status: int = 400, params: dict | None = None, *,
            audited: dict | None = None, **values):
    """The form again, with its error; audited (``audited``: the row's extra fields)."""
    audit(event, code, **(audited or {}))
    return page(template, status, error=code, params=params, **values)


def day(moment) -> str | None:
    """The date a citizen reads: in Belgium's time zone (stored moments are UTC)."""
    return f"{moment.astimezone(BRUSSELS):%d/%m/%Y}" if moment else None


def password_check() -> PasswordCheck:
    """The password key's check, lockout and rate limits: a stolen session cannot guess the password here."""
    s = services()
    adapter = s.adapters.get(PASSWORD_KEY)
    failures, seconds = (adapter.settings.max_failures, adapter.settings.lockout_seconds) if adapter else (5, 900)
    return PasswordCheck(credentials=s.credentials, store=s.store, scope=PASSWORD_KEY, max_failures=failures,
                         block_seconds=seconds, credential_key=PASSWORD_KEY)


def new_password_problem(new: str, again: str, username: str | None) -> tuple[str, dict] | None:
    """Why a typed new password (twice) cannot be one: (code, params), or None."""
    if new != again:
        return "passwords_differ", {}
    problems = services().credentials.password_problems(new, username=username)
    if problems:
        return problems[0], {"min_length": services().credentials.rules.min_length, "max_length": MAX_INPUT}
    return None


def removable(key: str):
    """The citizen's active credential of an enabled key that has to be activated (so may be removed)."""
    s = services()
    adapter = s.adapters.get(key)
    if adapter is None or not adapter.needs_activation:
        return None
    record = s.credentials.of_person(key=key, person_fedid=current_user.fedid)
    return record if record is not None and record.active else None


# --- "Mes clés numériques" -------------------------------------------------------------
@bp.get("/keys")
@login_required
def keys():
    s = services()
    records = {r.key: r for r in s.credentials.all_of_person(current_user.fedid)}  # by id: the newest wins
    now = s.clock.now()
    strong = current_user.level >= int(s.settings["account"]["activation_level"])
    groups, active = [], set()
    for group in GROUP_ORDER:
        rows = []
        for key, adapter in s.adapters.items():
            if adapter.group != group:
                continue
            record = records.get(key)
            if not adapter.needs_activation:  # eID, itsme: "ACTIVE" by default, as the guide says
                row = {"key": key, "active": True, "default": True}
            else:
                on = record is not None and record.active
                row = {"key": key, "active": on, "since": day(record.activated_at) if on else None,
                       "expires": day(record.expires_at) if on else None,
                       "expired": on and record.expired(now),
                       "activate": not on and adapter.has_activation_steps,
                       "renew": on and adapter.renewable and adapter.has_activation_steps,
                       "note": adapter.status_note(record) if on else None,
                       "modify": on and key == PASSWORD_KEY, "remove": on}
            row["name"] = KEY_NAMES.get(key, key)
            if row["active"]:
                active.add(key)
            rows.append(row)
        if rows:
            groups.append((GROUPS[group.value], rows))
    activated = request.args.get("activated")
    confirmed = None
    if activated in active and s.adapters[activated].needs_activation:
        adapter = s.adapters[activated]
        confirmed = {"key": activated, "name": KEY_NAMES.get(activated, activated),
                     "needs_password": adapter.group is Group.SECURITY_CODE}
    done = request.args.get("done")
    return page("account/keys.html", groups=groups, strong=strong, confirmed=confirmed,
                done=done if done in ("removed", "password", "username") else None)


@bp.route("/keys/<key>/remove", methods=["GET", "POST"])
@managing
def remove(key: str):
    """"Supprimer": a confirmation page, then the removal (audited, the person told by mail)."""
    s = services()
    record = removable(key)
    values = {"key": key, "name": KEY_NAMES.get(key, key)}
    if record is None:
        return refused("account/refused.html", "key.remove_refused", "no_such_key", 404, audited={"key": key})
    if request.method == "GET":
        # The code keys work only with the username + password: say so before it goes.
        dependent = [KEY_NAMES.get(k, k) for k, a in s.adapters.items()
                     if key == PASSWORD_KEY and a.group is Group.SECURITY_CODE
                     and s.credentials.has_active(key=k, person_fedid=record.person_fedid)]
        return page("account/remove.html", dependent=dependent, **values)
    if not s.credentials.remove(key=key, person_fedid=current_user.fedid):  # removed meanwhile
        return refused("account/refused.html", "key.remove_refused", "no_such_key", 404, audited={"key": key})
    audit("key.removed", key=key)
    s.notices.key_event(current_user.fedid, key, "removed")
    return redirect(url_for("account.keys", done="removed"), code=303)


# --- "Modifier": username and password -------------------------------------------------------
@bp.route("/password", methods=["GET", "POST"])
@managing
def password():
    s = services()
    record = s.credentials.of_person(key=PASSWORD_KEY, person_fedid=current_user.fedid)
    if record is None or not record.active:
        return refused("account/refused.html", "account.password_change_refused", "no_such_key", 404)
    if request.method == "GET":
        return page("account/password.html")
    event = "account.password_change_refused"
    current = (request.form.get("current") or "")[:MAX_INPUT]
    new, again = (request.form.get("password") or "")[:MAX_INPUT], request.form.get("confirm") or ""
    if not current or not new:
        return refused("account/password.html", event, "missing_fields")
    problem = new_password_problem(new, again, record.username)
    if problem:
        return refused("account/password.html", event, problem[0], params=problem[1])
    # The current password through the shared check: counted by the lockout before it is verified.
    result = password_check().check(record.username, current, remote_addr=request.remote_addr)
    if not result.ok:
        code = "wrong_current_password" if result.error == BAD_CREDENTIALS else result.error
        params = {"minutes": result.minutes} if result.minutes else {}
        return refused("account/password.html", event, code, CHECK_STATUS.get(result.error, 400), params=params)
    # Over the hash just verified: of two changes racing, one wins, the other is refused.
    if not s.credentials.set_password(result.credential, new):
        return refused("account/password.html", event, "account_conflict", 409)
    audit("account.password_changed", key=PASSWORD_KEY)
    s.notices.key_event(current_user.fedid, PASSWORD_KEY, "changed")
    return redirect(url_for("account.keys", done="password"), code=303)


@bp.route("/username", methods=["GET", "POST"])
@managing
def username():
    s = services()
    record = s.credentials.of_person(key=PASSWORD_KEY, person_fedid=current_user.fedid)
    if record is None or not record.active:
        return refused("account/refused.html", "account.username_change_refused", "no_such_key", 404)
    if request.method == "GET":
        return page("account/username.html", username=record.username)
    typed = (request.form.get("username") or "")[:MAX_INPUT]
    try:
        s.credentials.set_username(record, typed)
    except UsernameUnavailable as exc:
        return refused("account/username.html", "account.username_change_refused", exc.code,
                       username=typed.strip()[:200])
    audit("account.username_changed", key=PASSWORD_KEY)
    s.notices.key_event(current_user.fedid, PASSWORD_KEY, "changed")
    return redirect(url_for("account.keys", done="username"), code=303)


# --- "Mes sessions" ----------------------------------------------------------------------
def moment(epoch: float) -> str:
    """A date and time a citizen reads, in Belgium's time zone."""
    return f"{datetime.fromtimestamp(epoch, BRUSSELS):%d/%m/%Y %H:%M}"


@bp.get("/sessions")
@login_required
def sessions():
    """Which portals this session is logged in to, since when, with which key and
    level; and "log out of all" (the same single logout as the bar's button)."""
    s = services()
    sso = current_user.sso
    rows = []
    for entity_id in sso.portals:
        portal = s.registry.get(entity_id)
        since, key, level = (sso.visits.get(entity_id) or [None, None, None])[:3]
        rows.append({"entity_id": entity_id,
                     "name": (portal.policy.display_name or portal.name) if portal else entity_id,
                     "since": moment(since) if since else None, "key": KEY_NAMES.get(key, key) if key else None,
                     "level": level})
    logins = sorted(sso.all_logins(), key=lambda login: login.authn_instant)
    return page("account/sessions.html", portals=rows, started=moment(sso.started or sso.created),
                ends=moment(sso.ends(s.sessions.lifetime)), idle_minutes=s.sessions.idle // 60,
                logins=[{"key": KEY_NAMES.get(x.key, x.key), "level": x.level, "at": moment(x.authn_instant)}
                        for x in logins])


# --- "Mon profil" ------------------------------------------------------------------------
@bp.route("/profile", methods=["GET", "POST"])
@managing
def profile():
    s = services()
    contact = s.contacts.get(current_user.fedid)
    languages = current_app.config["SESAME_LANGUAGES"]
    values = {"contact": contact, "languages": languages}
    if request.method == "GET":
        return page("account/profile.html", saved=bool(request.args.get("saved")), mail=contact.mail or "",
                    lang=contact.lang, **values)
    typed_mail, lang = (request.form.get("mail") or "")[:300], request.form.get("lang") or ""
    mail = email_address(typed_mail)
    shown = {"mail": typed_mail.strip(), "lang": lang if lang in languages else contact.lang}
    if mail is None:
        return refused("account/profile.html", "account.profile_refused", "bad_email", **shown, **values)
    if lang not in languages:
        return refused("account/profile.html", "account.profile_refused", "bad_language", **shown, **values)
    changed = [name for name, old, new in (("mail", contact.mail, mail), ("lang", contact.lang, lang)) if old != new]
    if "mail" in changed:
        s.contacts.set_mail(current_user.fedid, mail)
    if "lang" in changed:
        s.contacts.set_language(current_user.fedid, lang)
    session["lang"] = lang  # the pages follow at once
    audit("account.profile_changed", changed=",".join(changed) or None)
    return redirect(url_for("account.profile", saved=1), code=303)


# --- "Nom d'utilisateur et/ou mot de passe oublié(s)?" -------------------------------------
# Three steps: who (username or e-mail address) → the code sent to an address a
# code key proved → a new password.  What was found lives in the state store
# under a random id the Flask session holds; the page answers the same whether
# or not an account matched (a code is issued either way, and only sent when
# one did), so it tells nobody who has an account.
def recovery_codes():
    return services().codes(RECOVERY, RECOVERY_POLICY)


def recovery_state() -> tuple[str | None, dict | None]:
    rid = session.get(RECOVERY)
    state = services().store.get(f"{RECOVERY}:{rid}") if isinstance(rid, str) else None
    return rid, state if isinstance(state, dict) else None


def find_person(typed: str) -> str | None:
    """The fedid of the one person this username or e-mail address names, or None."""
    s = services()
    found = s.credentials.find(key=PASSWORD_KEY, username=typed)
    if found is not None:
        return found.person_fedid
    mail = email_address(typed)
    if mail is None:
        return None
    with s.database.session() as db:
        fedids = db.scalars(select(Person.fedid).where(func.lower(Person.mail) == mail.lower()).limit(2)).all()
    return fedids[0] if len(fedids) == 1 else None  # an address two people share names nobody


def recovery_channel(fedid: str) -> tuple[str, str] | None:
    """(port, address) of the first active code key able to send now; None when none is."""
    s = services()
    if not s.credentials.has_active(key=PASSWORD_KEY, person_fedid=fedid):
        return None  # nothing to recover
    for key, port in RECOVERY_CHANNELS:
        record = s.credentials.of_person(key=key, person_fedid=fedid)
        to = record.data.get("to") if record is not None and record.active else None
        if to and getattr(s, port) is not None:
            return port, to
    return None


def send_recovery_code(fedid: str, port: str, to: str, code: str) -> None:
    """Send the code from a thread of its own: the page answers in the same time
    whether or not an account matched (a mail server's delay would tell)."""
    s = services()
    contact = s.contacts.get(fedid)
    minutes = RECOVERY_POLICY.ttl_seconds // 60
    with force_locale(contact.lang if contact else "fr"):
        text = _("Votre code de récupération Sésame : %(code)s. Il est valable %(minutes)s minutes. "
                 "Si vous n'avez rien demandé, ignorez ce message.", code=code, minutes=minutes)
        subject = _("Votre code de récupération Sésame")
    if port == "mailer":
        send = functools.partial(s.mailer.send, to=to, subject=subject, text=text)
    else:
        send = functools.partial(s.sms.send, to=to, text=text)

    def deliver() -> None:
        try:
            send()
        except DeliveryFailed as exc:  # the citizen asks again; nothing else to undo
            log.warning("recovery code not sent: %s", exc)

    threading.Thread(target=deliver, name="recovery-code", daemon=True).start()


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    if request.method == "GET":
        return page("account/forgot.html")
    typed = (request.form.get("identifier") or "").strip()[:254]
    if not typed:
        return refused("account/forgot.html", "account.recovery_refused", "missing_identifier")
    fedid = find_person(typed)
    channel = recovery_channel(fedid) if fedid else None
    rid = secrets.token_urlsafe(24)
    # Issued whether or not it will be sent: limits and attempts behave alike for everyone.
    account = fedid if channel else "typed:" + digest(typed.lower())
    issued = recovery_codes().issue(rid, account=account, remote_addr=request.remote_addr)
    if not issued.ok:
        params = {"minutes": max(1, issued.retry_after // 60), "seconds": issued.retry_after}
        return refused("account/forgot.html", "account.recovery_refused", issued.error, 429, params=params,
                       identifier=typed)
    if channel:
        send_recovery_code(fedid, *channel, issued.code)
    services().store.put(f"{RECOVERY}:{rid}", {"fedid": fedid if channel else None, "verified": False},
                         ttl=RECOVERY_POLICY.ttl_seconds)
    session[RECOVERY] = rid
    audit("account.recovery_requested", "sent" if channel else "no_match",
          person_fedid=fedid if channel else None, channel=channel[0] if channel else None)
    return redirect(url_for("account.forgot_code"), code=303)


@bp.route("/forgot/code", methods=["GET", "POST"])
def forgot_code():
    rid, state = recovery_state()
    if state is None:
        return refused("account/forgot.html", "account.recovery_refused", "recovery_expired", 410)
    if request.method == "GET":
        return page("account/forgot_code.html")
    typed = request.form.get("code") or ""
    if not typed.strip():
        return refused("account/forgot_code.html", "account.recovery_refused", "missing_code")
    checked = recovery_codes().check(rid, typed)  # attempts, expiry, single use: the engine's
    if not checked.ok or not state.get("fedid"):
        code = checked.error or "code_expired"
        return refused("account/forgot_code.html", "account.recovery_refused", code,
                       401 if code == "bad_code" else 410, params={"attempts_left": checked.attempts_left},
                       audited={"person_fedid": state.get("fedid")})
    services().store.put(f"{RECOVERY}:{rid}", {**state, "verified": True}, ttl=RECOVERY_POLICY.ttl_seconds)
    return redirect(url_for("account.forgot_password"), code=303)


@bp.route("/forgot/password", methods=["GET", "POST"])
def forgot_password():
    s = services()
    rid, state = recovery_state()
    record = None
    if state is not None and state.get("verified"):
        record = s.credentials.of_person(key=PASSWORD_KEY, person_fedid=state["fedid"])
    if record is None or not record.active:
        return refused("account/forgot.html", "account.recovery_refused", "recovery_expired", 410)
    values = {"username": record.username}
    if request.method == "GET":
        return page("account/forgot_password.html", **values)
    new, again = (request.form.get("password") or "")[:MAX_INPUT], request.form.get("confirm") or ""
    problem = new_password_problem(new, again, record.username) if new else ("missing_fields", {})
    if problem:
        return refused("account/forgot_password.html", "account.recovery_refused", problem[0], params=problem[1],
                       audited={"person_fedid": state["fedid"]}, **values)
    # Taken once (of two parallel posts, one finds nothing), then over the hash read.
    if s.store.pop(f"{RECOVERY}:{rid}") is None or not s.credentials.set_password(record, new):
        return refused("account/forgot.html", "account.recovery_refused", "recovery_expired", 410,
                       audited={"person_fedid": state["fedid"]})
    session.pop(RECOVERY, None)
    audit("account.recovered", key=PASSWORD_KEY, person_fedid=state["fedid"])
    s.notices.key_event(state["fedid"], PASSWORD_KEY, "changed")
    return page("account/forgot_done.html", **values)
