"""Security code via a mobile app: TOTP (RFC 6238), level 400.

Login is the shared one of ``adapters.security_code`` (username + password,
then the code); this module adds what is TOTP's own:

* ``check_code``: the code of the current 30-second step, or of one step
  before or after (a phone's clock is rarely exact), compared in constant
  time; the step found is then written as the credential's counter with ONE
  conditional UPDATE (``credentials.advance_counter``), so a code already
  accepted, or an older one, is refused again, even posted in parallel.
* the activation wizard of the CSAM guide, five screens: *Coordonnées* (the
  e-mail address), *Installer une application mobile*, *Activer une
  application mobile* (QR code, the secret for manual entry, one code to
  prove the app has it), *Nom d'utilisateur & mot de passe* (only for a
  person without them), *Confirmation*.

The seed is sealed (``sealer``, AES-GCM bound to the person) from the moment
it is made: the journey's state and, later, the credential's data only ever
hold the sealed value, never a usable seed.  Times are the ``clock`` port's
(never ``time.time()``), so tests move time instead of sleeping.

The key becomes active only in the wizard's last POST, which calls
``credentials.activate`` once (the database decides between parallel posts);
the new password, when one is chosen, is handed to that same call and never
kept in the journey's state.
"""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

import pyotp
import segno
from flask_babel import lazy_gettext as _l

from adapters.base import AuthResult, Challenge, Failure, Outcome, Redirect, Subject, SubjectKind, Success
from adapters.contacts import email_address
from adapters.port_errors import SealBroken, UsernameUnavailable
from adapters.security_code import MAX_PASSWORD, CodeVerdict, SecurityCodeKey, SecurityCodeSettings
from adapters.wizard import reached_step

log = logging.getLogger("sesame.keys.totp")

PERIOD = 30        # seconds per time step: what every authenticator app uses (with 6 digits, SHA-1)
DIGITS = 6
WINDOW = 1         # steps accepted either side of now
MAX_CONFIRM = 5    # codes tried per activation journey
PASSWORD_KEY = "password"

# The wizard's screens, in order; the number is the step bar's position.
CONTACT, INSTALL, SCAN, ACCOUNT, CONFIRMATION = 1, 2, 3, 4, 5
TEMPLATES = {CONTACT: "totp/contact.html", INSTALL: "totp/install.html", SCAN: "totp/scan.html",
             ACCOUNT: "totp/account.html"}
STEPS = {"contact": CONTACT, "install": INSTALL, "scan": SCAN, "account": ACCOUNT}
STEP_NAMES = (_l("Coordonnées"), _l("Installer une application mobile"), _l("Activer une application mobile"),
              _l("Nom d'utilisateur & mot de passe"), _l("Confirmation"))

# Examples of suitable apps, as the guide lists them (any RFC 6238 app works).
APPS = (("Google Authenticator", "Android, iOS"), ("Microsoft Authenticator", "Android, iOS"),
        ("Duo Mobile", "Android, iOS"), ("FreeOTP", "Android, iOS"), ("Aegis Authenticator", "Android"))

WRONG_CODE = "wrong_code"
CODE_REPLAYED = "code_replayed"
KEY_UNUSABLE = "totp_unusable"
TOO_MANY_CONFIRM = "too_many_confirm_attempts"
ALREADY_ACTIVE = "key_already_active"


def seal_owner(person_fedid: str) -> str:
    """What a sealed seed is bound to: a seed copied onto someone else's credential does not open."""
    return f"{person_fedid}:totp"


def grouped(secret: str) -> str:
    """The secret in groups of 4 characters, easier to type into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def matching_step(seed: str, typed: str, now: float) -> int | None:
    """The time step within ``WINDOW`` of ``now`` whose code is ``typed``, or None.

    Every candidate is computed and compared in constant time; should two
    steps share the code (one chance in a million), the latest wins.
    """
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD)
    current = int(now) // PERIOD
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), typed):
            found = step
    return found


def normalised_code(typed: str) -> str | None:
    """Six digits, or None; apps show "123 456", so spaces are dropped."""
    code = "".join((typed or "").split())[:32]
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else None


class TotpAdapter(SecurityCodeKey):
    id = "totp"
    level = 400
    levels = (400, 400)
    ports = SecurityCodeKey.ports | {"sealer"}
    template_folder = Path(__file__).with_name("templates")
    messages = {
        WRONG_CODE: _l("Ce code de sécurité n'est pas correct. Saisissez le code affiché maintenant par votre "
                       "application mobile, et vérifiez que l'heure de votre téléphone est exacte."),
        CODE_REPLAYED: _l("Ce code a déjà été utilisé. Attendez le code suivant de votre application."),
        KEY_UNUSABLE: _l("Votre clé numérique « code de sécurité via application mobile » ne peut plus être "
                         "utilisée. Activez-la à nouveau dans « Mes clés numériques »."),
        TOO_MANY_CONFIRM: _l("Trop de codes erronés. Recommencez l'activation de votre application mobile."),
        ALREADY_ACTIVE: _l("Cette clé numérique est déjà activée."),
    }

    @dataclass(frozen=True)
    class Settings(SecurityCodeSettings):
        issuer: str = "Sésame"  # the name the app shows beside the code

    def page_policy(self):
        # The QR code is an inline PNG (data: URI): made here, no request to a third party.
        return {"img-src": ("data:",)}

    # --- login ---------------------------------------------------------------------
    def code_values(self, ctx, record, contact) -> dict:
        return {"code_help": _l("Ouvrez l'application mobile que vous avez installée. Un code de sécurité est "
                                "généré automatiquement.")}

    def check_code(self, ctx, typed: str, record) -> CodeVerdict:
        code = normalised_code(typed)
        if code is None:
            return CodeVerdict(False, WRONG_CODE)
        try:
            seed = ctx.ports.sealer.open(record.data.get("seed"), owner=seal_owner(record.person_fedid))
        except SealBroken:
            # Altered row, another sealing key: nothing the citizen can fix by typing.
            log.error("totp seed of credential %s does not open", record.id)
            return CodeVerdict(False, KEY_UNUSABLE, final=True)
        step = matching_step(seed, code, ctx.ports.clock.now())
        if step is None:
            return CodeVerdict(False, WRONG_CODE)
        # The one conditional UPDATE decides: of two posts of the same code, one moves the counter.
        if not ctx.ports.credentials.advance_counter(record, step):
            return CodeVerdict(False, CODE_REPLAYED)
        return CodeVerdict(True)

    # --- activation ------------------------------------------------------------------
    def activation_begin(self, ctx) -> Outcome:
        if ctx.person_fedid is None:
            return Failure("activation_level")
        if ctx.ports.credentials.has_active(key=self.id, person_fedid=ctx.person_fedid):
            return Failure(ALREADY_ACTIVE)
        ctx.state.clear()
        contact = ctx.ports.people.get(ctx.person_fedid)
        ctx.state.update(reached=CONTACT, mail=(contact.mail if contact else None) or "")
        return self._page(ctx, CONTACT)

    def activation_action(self, ctx, step: str) -> Outcome:
        number = reached_step(ctx, step, STEPS)
        if isinstance(number, Failure):
            return number
        if number == ACCOUNT and not self._needs_password(ctx):
            return Failure("step_order")
        if ctx.method != "POST":
            return self._page(ctx, number)
        if number == CONTACT:
            return self._contact(ctx)
        if number == INSTALL:
            return self._advance(ctx, SCAN)
        if number == SCAN:
            return self._scan(ctx)
        return self._account(ctx)

    def _contact(self, ctx) -> Outcome:
        typed = (ctx.form.get("mail") or "")[:300]
        mail = email_address(typed)
        if mail is None:
            return self._page(ctx, CONTACT, error="bad_email", status=400, mail=typed.strip())
        ctx.state["mail"] = mail  # written to the person only at the last step
        return self._advance(ctx, INSTALL)

    def _scan(self, ctx) -> Outcome:
        typed = ctx.form.get("code") or ""
        if not typed.strip():
            return self._page(ctx, SCAN, error="missing_code", status=400)
        if not ctx.attempts("confirm").reserve(MAX_CONFIRM):  # counted before the code is looked at
            return Failure(TOO_MANY_CONFIRM)
        code = normalised_code(typed)
        seed = self._seed(ctx)
        step = matching_step(seed, code, ctx.ports.clock.now()) if code else None
        if step is None:
            return self._page(ctx, SCAN, error=WRONG_CODE, status=401)
        ctx.state["step"] = step  # the credential starts with it: this code cannot log in afterwards
        if self._needs_password(ctx):
            return self._advance(ctx, ACCOUNT)
        return self._finish(ctx, None)

    def _account(self, ctx) -> Outcome:
        if "step" not in ctx.state:
            return Failure("step_order")
        credentials = ctx.ports.credentials
        username = (ctx.form.get("username") or "").strip()[:300]
        password = (ctx.form.get("password") or "")[:MAX_PASSWORD]
        again = ctx.form.get("confirm") or ""
        problem = credentials.username_problem(username, person_fedid=ctx.person_fedid)
        params = {}
        if not problem and password != again:
            problem = "passwords_differ"
        if not problem:
            problems = credentials.password_problems(password, username=username)
            if problems:
                problem = problems[0]
                params = {"min_length": credentials.rules.min_length, "max_length": MAX_PASSWORD}
        if problem:
            return self._page(ctx, ACCOUNT, error=problem, status=400, params=params, username=username)
        return self._finish(ctx, (username, password), username=username)

    def _finish(self, ctx, new_password, *, username: str = "") -> Outcome:
        """Confirmation: the one write that makes the key active (and the password, if chosen)."""
        ports, fedid = ctx.ports, ctx.person_fedid
        if "step" not in ctx.state or "seed" not in ctx.state:
            return Failure("step_order")
        try:
            done = ports.credentials.activate(key=self.id, person_fedid=fedid, data={"seed": ctx.state["seed"]},
                                              counter=ctx.state["step"], new_password=new_password)
        except UsernameUnavailable as exc:
            return self._page(ctx, ACCOUNT, error=exc.code, status=400, username=username)
        if not done:  # a parallel post activated it first (or the person is gone)
            already = ports.credentials.has_active(key=self.id, person_fedid=fedid)
            return Failure(ALREADY_ACTIVE if already else "journey_conflict")
        contact = ports.people.get(fedid)
        if contact is not None and ctx.state.get("mail") and contact.mail != ctx.state["mail"]:
            ports.people.set_mail(fedid, ctx.state["mail"])
        ctx.state.clear()
        return Success(AuthResult(subject=Subject(SubjectKind.FEDID, fedid), key=self.id, level=self.level,
                                  authn_instant=ports.clock.now()))

    # --- helpers ---------------------------------------------------------------------
    def _advance(self, ctx, number: int) -> Outcome:
        ctx.state["reached"] = max(ctx.state.get("reached", 0), number)
        name = next(name for name, n in STEPS.items() if n == number)
        return Redirect(ctx.url_for_step(name))

    def _needs_password(self, ctx) -> bool:
        return not ctx.ports.credentials.has_active(key=PASSWORD_KEY, person_fedid=ctx.person_fedid)

    def _seed(self, ctx) -> str:
        """This journey's seed: made once, kept sealed in the state (a reload shows the same QR code)."""
        owner = seal_owner(ctx.person_fedid)
        if "seed" not in ctx.state:
            ctx.state["seed"] = ctx.ports.sealer.seal(pyotp.random_base32(), owner=owner)
        return ctx.ports.sealer.open(ctx.state["seed"], owner=owner)

    def _page(self, ctx, number: int, *, error: str | None = None, status: int = 200, params=None,
              **values) -> Challenge:
        """One wizard screen, with its step bar and the URLs of its forms."""
        values = {"step_names": STEP_NAMES, "current": number,
                  "action": ctx.url_for_step({v: k for k, v in STEPS.items()}[number]), **values}
        if number == CONTACT:
            values.setdefault("mail", ctx.state.get("mail", ""))
        elif number == INSTALL:
            values["apps"] = APPS
        elif number == SCAN:
            seed = self._seed(ctx)
            contact = ctx.ports.people.get(ctx.person_fedid)
            account = ctx.state.get("mail") or (contact.name if contact else "") or ctx.person_fedid
            uri = pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD).provisioning_uri(
                name=account, issuer_name=self.settings.issuer)
            values.update(qr=segno.make(uri, error="m").png_data_uri(scale=5), secret=grouped(seed),
                          valid_seconds=PERIOD * 2)
        return Challenge(TEMPLATES[number], values, error=error, status=status, params=params or {})
