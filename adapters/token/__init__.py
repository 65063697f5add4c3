"""Security code via token (level 300): username + password, then the code at
a numbered position of a paper card of 24 codes (``adapters.token.card``).

Login is the shared one of ``adapters.security_code``; this module adds:

* ``send_code``: no message goes out; the position to ask is the card's next
  one.  The order of positions is drawn once per card with ``secrets`` and
  kept with it, so restarting the login never brings another position (who
  saw part of a card cannot wait for a position they know), and the card's
  ``counter`` column says how many positions are used.
* ``check_code``: counted first in the key's own lockout (scope ``token``, by
  person: ``key_max_failures`` wrong answers in ``key_block_seconds`` block
  the token that long, beside the password lockout the shared login counts);
  then the typed code's fingerprint is compared in constant time, and the
  position is spent with ONE conditional UPDATE (``advance_counter`` from n
  to n + 1): of parallel posts of the right code exactly one logs in, and a
  used position is refused (``token_code_replayed``) and never asked again.
* the activation wizard, three screens: *Commander* (the card goes to the
  person's e-mail address), *Imprimer* (the card shown once, the PDF mailed),
  *Confirmation* (the code of one random position; username + password for a
  person without them).  Only the last POST writes the credential.

What is stored: per position a keyed fingerprint (``Sealer.fingerprint``,
bound to person, card and position), the card's serial and asking order;
never a code.  Between the wizard's screens the codes live in the journey's
state sealed (AES-GCM, owner ``<fedid>:token-card``) and are dropped at the
end.  ``issue_card`` is the registration office's way to the same card.
"""
from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from flask_babel import force_locale, gettext as _, lazy_gettext as _l

from adapters.base import AuthResult, Challenge, Failure, Outcome, Redirect, Subject, SubjectKind, Success
from adapters.lockout import Lockout
from adapters.masking import mask_email
from adapters.port_errors import DeliveryFailed, SealBroken, UsernameUnavailable
from adapters.security_code import MAX_PASSWORD, CodeVerdict, SecurityCodeKey, SecurityCodeSettings
from adapters.wizard import reached_step
from adapters.settings import SettingsError
from adapters.token import card as cards

log = logging.getLogger("sesame.keys.token")
BRUSSELS = ZoneInfo("Europe/Brussels")

LOCKOUT_SCOPE = "token"   # the key's own count of wrong codes, by person
PASSWORD_KEY = "password"
MAX_CONFIRM = 5           # codes tried per activation journey

# The wizard's screens, in order; the number is the step bar's position.
ORDER, CARD, CONFIRM = 1, 2, 3
STEPS = {"order": ORDER, "card": CARD, "confirm": CONFIRM}
TEMPLATES = {ORDER: "token/order.html", CARD: "token/show.html", CONFIRM: "token/confirm.html"}
STEP_NAMES = (_l("Commander une carte"), _l("Imprimer votre carte"), _l("Confirmation"))

# Error codes: the key choice page merges every key's messages, so the token's are its own.
WRONG_CODE = "token_wrong_code"
REPLAYED = "token_code_replayed"
BLOCKED = "token_blocked"
USED_UP = "token_used_up"
REPLACED = "token_card_replaced"
UNUSABLE = "token_unusable"
NO_MAIL = "token_no_mail"
TOO_MANY_CONFIRM = "token_too_many_confirm"
DELIVERY_FAILED = "delivery_failed"


def card_owner(person_fedid: str) -> str:
    """What the card sealed in a journey's state is bound to."""
    return f"{person_fedid}:token-card"


class TokenAdapter(SecurityCodeKey):
    id = "token"
    level = 300
    levels = (300, 300)
    ports = SecurityCodeKey.ports | {"sealer", "mailer"}
    template_folder = Path(__file__).with_name("templates")
    static_folder = Path(__file__).with_name("static")   # the card's print style sheet and print button
    messages = {
        WRONG_CODE: _l("Ce code de sécurité n'est pas correct. Saisissez le code n° %(position)s de votre carte "
                       "token."),
        REPLAYED: _l("Ce code de sécurité a déjà été utilisé. Recommencez l'identification : le code d'un autre "
                     "numéro de votre carte vous sera demandé."),
        BLOCKED: _l("Votre clé numérique « code de sécurité via token » est bloquée après trop de codes erronés, "
                    "jusqu'à %(until)s."),
        USED_UP: _l("Tous les codes de votre carte token ont été utilisés. Commandez une nouvelle carte dans "
                    "« Mes clés numériques »."),
        REPLACED: _l("Votre carte token a été remplacée pendant l'identification. Recommencez avec votre "
                     "nouvelle carte."),
        UNUSABLE: _l("Votre clé numérique « code de sécurité via token » ne peut plus être utilisée. Commandez "
                     "une nouvelle carte dans « Mes clés numériques »."),
        NO_MAIL: _l("Votre carte est envoyée par e-mail : ajoutez d'abord votre adresse e-mail dans « Mon "
                    "profil »."),
        TOO_MANY_CONFIRM: _l("Trop de codes erronés. Recommencez la commande de votre carte token."),
    }

    @dataclass(frozen=True)
    class Settings(SecurityCodeSettings):
        key_max_failures: int = 5      # wrong codes in key_block_seconds that block the token
        key_block_seconds: int = 3600  # that window, and how long the block lasts
        low_codes_warning: int = 5     # "Mes clés numériques" warns at this many codes left or fewer

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.key_max_failures < 1 or self.key_block_seconds < 1 or self.low_codes_warning < 0:
                raise SettingsError("key_max_failures and key_block_seconds must be at least 1, "
                                    "low_codes_warning at least 0")

    # --- login -------------------------------------------------------------------------
    def key_lockout(self, ports) -> Lockout:
        return Lockout(ports.store, LOCKOUT_SCOPE, self.settings.key_max_failures, self.settings.key_block_seconds)

    def send_code(self, ctx, record, contact) -> Outcome | None:
        """Nothing is sent: remember the card's next position, the one the code page asks."""
        fedid, data = record.person_fedid, record.data
        left = self.key_lockout(ctx.ports).blocked_for(fedid)
        if left:  # said after the right password only, like "key not active"
            self._audit(ctx, "login.failure", BLOCKED, person_fedid=fedid)
            return Failure(BLOCKED, {"until": until(ctx.ports, left)})
        order, used = data.get("order") or [], record.counter or 0
        if used >= len(order):
            self._audit(ctx, "login.failure", USED_UP, person_fedid=fedid)
            return Failure(USED_UP)
        ctx.state.update(position=order[used], serial=data.get("serial"))
        return None

    def code_values(self, ctx, record, contact) -> dict:
        return {"code_help": _l("Saisissez le code de sécurité n° %(position)s de votre carte token (carte "
                                "n° %(serial)s).", position=ctx.state.get("position"),
                                serial=ctx.state.get("serial")),
                # Codes have letters: a phone must not offer a digits-only keypad (for the shared page's input).
                "code_inputmode": "text"}

    def check_code(self, ctx, typed: str, record) -> CodeVerdict:
        ports, fedid = ctx.ports, record.person_fedid
        lockout = self.key_lockout(ports)
        attempt = lockout.reserve(fedid)  # counted before the code is looked at: parallel posts cannot exceed it
        if not attempt.granted:
            return CodeVerdict(False, BLOCKED, {"until": until(ports, attempt.blocked_for)}, final=True)
        verdict = self._verify(ctx, typed, record)
        if verdict.ok:
            lockout.record_success(attempt)
        elif lockout.record_failure(attempt):
            self._audit(ctx, "token.blocked", BLOCKED, person_fedid=fedid)
            seconds = self.settings.key_block_seconds
            return CodeVerdict(False, BLOCKED, {"until": until(ports, seconds)}, final=True)
        return verdict

    def _verify(self, ctx, typed: str, record) -> CodeVerdict:
        data, position = record.data, ctx.state.get("position")
        serial, order, used = data.get("serial"), data.get("order") or [], record.counter or 0
        if serial != ctx.state.get("serial"):   # reissued since the code page was shown
            return CodeVerdict(False, REPLACED, final=True)
        if position not in order or order.index(position) != used:
            # Spent meanwhile (another login with the same card): asked again, it would be a replay.
            return CodeVerdict(False, REPLAYED, final=True)
        expected = (data.get("codes") or {}).get(str(position))
        if not expected:
            log.error("token credential %s has no fingerprint for position %s", record.id, position)
            return CodeVerdict(False, UNUSABLE, final=True)
        code = cards.normalised(typed) or ""  # a malformed code is fingerprinted too: same time, same answer
        found = ctx.ports.sealer.fingerprint(code, owner=cards.owner(record.person_fedid, serial, position))
        if not code or not hmac.compare_digest(found, expected):
            return CodeVerdict(False, WRONG_CODE, {"position": position})
        # The one conditional UPDATE decides: of two posts of this code, one moves the counter.
        if not ctx.ports.credentials.advance_counter(record, used + 1):
            return CodeVerdict(False, REPLAYED, final=True)
        return CodeVerdict(True)

    # --- "Mes clés numériques" -----------------------------------------------------------
    renewable = True  # "Mes clés numériques" offers a new card while the old one works

    def status_note(self, record) -> str | None:
        """A short text for the key's row: codes left, with a warning when few remain."""
        if record is None or not record.active:
            return None
        left = max(0, len(record.data.get("order") or []) - (record.counter or 0))
        serial = record.data.get("serial", "")
        if left == 0:
            return _("Plus aucun code sur votre carte n° %(serial)s : commandez une nouvelle carte.", serial=serial)
        if left <= self.settings.low_codes_warning:
            return _("Attention : il ne reste que %(count)s code(s) sur votre carte n° %(serial)s. Commandez une "
                     "nouvelle carte.", count=left, serial=serial)
        return _("%(count)s codes restants sur votre carte n° %(serial)s.", count=left, serial=serial)

    # --- the registration office ---------------------------------------------------------
    def issue_card(self, ports, person_fedid: str, *, lang: str) -> list[str]:
        """Give the person a new active token card, for a registration office.

        ``ports``: this key's ports (``Engine.ports_for(adapter)``).  The
        person's previous token credential, active or not, is removed first:
        its codes stop working at once.  The new card's PDF goes to the
        person's e-mail address in ``lang`` (none on record, or the mail
        server refusing it: audited, the card is issued all the same).
        Returns the 24 codes (position n is ``codes[n - 1]``), for ONE
        printable page, ``token/card.html`` rendered with ``codes`` and
        ``serial`` (``ports.credentials.of_person(key="token", ...).data["serial"]``)
        — never log them or keep them.  Raises ``LookupError`` when the person
        does not exist.
        """
        codes, serial = cards.new_codes(), cards.new_serial()
        if not self._install(ports, person_fedid, codes, serial):
            raise LookupError("no such person, or a card was issued in parallel")
        ports.audit.record("token.card_issued", result="ok", key=self.id, person_fedid=person_fedid, serial=serial,
                           by="office")
        contact = ports.people.get(person_fedid)
        with force_locale(lang):
            try:
                if contact is None or not contact.mail:
                    raise DeliveryFailed("no e-mail address on record")
                self._mail_card(ports, contact, codes, serial)
            except DeliveryFailed as exc:  # the printed page remains
                ports.audit.record("token.card_not_mailed", result=DELIVERY_FAILED, key=self.id,
                                   person_fedid=person_fedid, serial=serial, reason=str(exc)[:200])
        return codes

    def _install(self, ports, person_fedid: str, codes: list[str], serial: str, *, new_password=None) -> bool:
        """The card becomes the person's active token: the old credential goes, its codes with it.

        Removed, then a new row: a login that read the old row can no longer
        spend a position of it (``advance_counter`` finds no row), which
        rewriting the old row's data in place would not guarantee.
        """
        data = {"codes": cards.fingerprints(ports.sealer, person_fedid, serial, codes), "serial": serial,
                "order": cards.asking_order()}
        ports.credentials.remove(key=self.id, person_fedid=person_fedid)
        return ports.credentials.activate(key=self.id, person_fedid=person_fedid, data=data, counter=0,
                                          new_password=new_password)

    def _mail_card(self, ports, contact, codes: list[str], serial: str) -> None:
        """The card as a PDF to the person (texts in the current locale); raises when it did not go."""
        pdf = cards.card_pdf(codes, serial, holder=contact.name)
        text = "\n\n".join([
            _("Bonjour,"),
            _("Vous trouverez en pièce jointe votre carte de codes de sécurité Sésame (carte n° %(serial)s). "
              "Imprimez-la et conservez-la en lieu sûr.", serial=serial),
            _("Lors de chaque identification, après votre nom d'utilisateur et votre mot de passe, Sésame vous "
              "demandera le code d'un numéro de cette carte. Ne communiquez jamais ces codes à personne."),
            _("Si vous n'avez pas commandé cette carte, contactez sans attendre le service d'aide de Sésame."),
            _("Ceci est un message automatique de Sésame : n'y répondez pas."),
        ])
        ports.mailer.send(to=contact.mail, subject=_("Votre carte de codes de sécurité Sésame"), text=text,
                          attachments=[(f"sesame-carte-{serial}.pdf", "application/pdf", pdf)])

    # --- activation ("Mes clés numériques") ---------------------------------------------------
    def activation_begin(self, ctx) -> Outcome:
        # An active token may be ordered again: the old card works until the new one is confirmed.
        if ctx.person_fedid is None:
            return Failure("activation_level")
        ctx.state.clear()
        ctx.state["reached"] = ORDER
        return self._page(ctx, ORDER)

    def activation_action(self, ctx, step: str) -> Outcome:
        number = reached_step(ctx, step, STEPS)
        if isinstance(number, Failure):
            return number
        if ctx.method != "POST":
            return self._page(ctx, number)
        if number == ORDER:
            return self._order(ctx)
        if number == CARD:
            ctx.state["reached"] = CONFIRM
            return Redirect(ctx.url_for_step("confirm"))
        return self._confirm(ctx)

    def _order(self, ctx) -> Outcome:
        """Make the card, mail its PDF; kept sealed in the journey until the last step."""
        ports, fedid = ctx.ports, ctx.person_fedid
        contact = ports.people.get(fedid)
        if contact is None or not contact.mail:
            return self._page(ctx, ORDER, error=NO_MAIL, status=400)
        codes, serial = cards.new_codes(), cards.new_serial()
        try:
            self._mail_card(ports, contact, codes, serial)
        except DeliveryFailed as exc:  # nobody has this card: it is dropped
            self._audit(ctx, "code.delivery_failed", DELIVERY_FAILED, person_fedid=fedid,
                        to=mask_email(contact.mail), reason=str(exc)[:200])
            return self._page(ctx, ORDER, error=DELIVERY_FAILED, status=503)
        ports.audit.record("token.card_issued", result="ok", key=self.id, person_fedid=fedid, serial=serial,
                           to=mask_email(contact.mail), remote_addr=ctx.remote_addr)
        sealed = ports.sealer.seal(json.dumps({"codes": codes, "serial": serial}), owner=card_owner(fedid))
        # A new card starts its screens again: shown once, one position to confirm.
        ctx.state.update(card=sealed, reached=CARD, shown=False,
                         position=secrets.randbelow(cards.CARD_SIZE) + 1, confirmed=False)
        return Redirect(ctx.url_for_step("card"))

    def _confirm(self, ctx) -> Outcome:
        """The code of one position, proving the card reached the citizen; the only write."""

        ports, fedid = ctx.ports, ctx.person_fedid
        card = self._card(ctx)
        if card is None:
            return Failure("step_order")
        if not ctx.state.get("confirmed"):
            typed = ctx.form.get("code") or ""
            if not typed.strip():
                return self._page(ctx, CONFIRM, error="missing_code", status=400)
            if not ctx.attempts("confirm").reserve(MAX_CONFIRM):  # counted before the code is looked at
                return Failure(TOO_MANY_CONFIRM)
            position = ctx.state["position"]
            code = cards.normalised(typed) or ""
            if not hmac.compare_digest(code.encode(), card["codes"][position - 1].encode()):
                self._audit(ctx, "key.activation_failed", WRONG_CODE, person_fedid=fedid)
                return self._page(ctx, CONFIRM, error=WRONG_CODE, status=401, params={"position": position})
            ctx.state["confirmed"] = True
        new_password, username = None, ""
        if self._needs_password(ctx):
            username = (ctx.form.get("username") or "").strip()[:300]
            password = (ctx.form.get("password") or "")[:MAX_PASSWORD]
            problem, params = self._account_problem(ctx, username, password, ctx.form.get("confirm") or "")
            if problem:
                return self._page(ctx, CONFIRM, error=problem, status=400, params=params, username=username)
            new_password = (username, password)
        try:  # a new password is created with the card, in activate's one transaction
            done = self._install(ports, fedid, card["codes"], card["serial"], new_password=new_password)
        except UsernameUnavailable as exc:
            return self._page(ctx, CONFIRM, error=exc.code, status=400, username=username)
        if not done:
            return Failure("journey_conflict")
        ctx.state.clear()  # the codes leave the journey with the last step
        return Success(AuthResult(subject=Subject(SubjectKind.FEDID, fedid), key=self.id, level=self.level,
                                  authn_instant=ports.clock.now()))

    # --- helpers -----------------------------------------------------------------------------
    def _account_problem(self, ctx, username: str, password: str, again: str):
        credentials = ctx.ports.credentials
        problem = credentials.username_problem(username, person_fedid=ctx.person_fedid)
        if not problem and password != again:
            problem = "passwords_differ"
        if not problem:
            problems = credentials.password_problems(password, username=username)
            if problems:
                return problems[0], {"min_length": credentials.rules.min_length, "max_length": MAX_PASSWORD}
        return problem, {}

    def _needs_password(self, ctx) -> bool:
        return not ctx.ports.credentials.has_active(key=PASSWORD_KEY, person_fedid=ctx.person_fedid)

    def _card(self, ctx) -> dict | None:
        """This journey's card ({"codes", "serial"}), opened from its sealed form; None before the order."""
        sealed = ctx.state.get("card")
        if not sealed:
            return None
        try:
            return json.loads(ctx.ports.sealer.open(sealed, owner=card_owner(ctx.person_fedid)))
        except SealBroken:
            return None

    def _page(self, ctx, number: int, *, error: str | None = None, status: int = 200, params=None,
              **values) -> Outcome:
        """One wizard screen, with its step bar and the URL of its form."""
        values = {"step_names": STEP_NAMES, "current": number,
                  "action": ctx.url_for_step({v: k for k, v in STEPS.items()}[number]), **values}
        if number == ORDER:
            contact = ctx.ports.people.get(ctx.person_fedid)
            current = ctx.ports.credentials.of_person(key=self.id, person_fedid=ctx.person_fedid)
            values.update(mail=contact.mail if contact else None,
                          replaces=current.data.get("serial") if current is not None and current.active else None)
        elif number == CARD:
            card = self._card(ctx)
            if card is None:
                return Failure("step_order")
            # Shown ONCE: a reload (or a later visit) shows the page without the codes.
            if not ctx.state.get("shown"):
                ctx.state["shown"] = True
                values.update(codes=card["codes"])
            values.update(serial=card["serial"])
        else:
            values.update(position=ctx.state.get("position"), confirmed=ctx.state.get("confirmed"),
                          needs_password=self._needs_password(ctx))
        return Challenge(TEMPLATES[number], values, error=error, status=status, params=params or {})


def until(ports, seconds: int) -> str:
    """When a block ends, as a citizen in Belgium reads it: "14:32", with the date when not today."""
    now = ports.clock.now()
    end = dt.datetime.fromtimestamp(math.ceil((now + seconds) / 60) * 60, BRUSSELS)
    today = dt.datetime.fromtimestamp(now, BRUSSELS).date()
    return f"{end:%H:%M}" if end.date() == today else f"{end:%d/%m/%Y %H:%M}"
