"""What the keys that *send* a code share (code by e-mail, code by SMS): the
activation wizard and the login's code, over one channel each.

Activation (a person already proved at the activation level, ``ctx.person_fedid``),
in the guide's three steps:

1. ``address``: confirm or change the address (prefilled from the person's
   record), checked and put in its stored form by the channel;
2. ``code``: a registration code sent there through the one-time-code engine
   (``adapters.one_time_code``, challenge ``<journey>:<key>:activation``),
   typed back; ``resend`` asks for a new one (POST, cooldown);
3. ``confirm``: the one step that writes: the credential (``data["to"]``: the
   address) and the person's address, then ``Success``.

The step reached lives in ``ctx.state`` (``address`` once a code went there,
``verified`` once it was typed back), so a step posted out of order is refused
(``step_order``) whatever the browser sends.

Login: the shared password step (``adapters.security_code``), then a code sent
to the credential's address (challenge ``<journey>:<key>``), checked by the
engine: at most ``max_code_attempts`` checks per challenge, single use.

A channel (``adapters.email_code``, ``adapters.sms_code``) writes only the
small hooks at the bottom: how an address is read, shown, prefilled, saved,
and how a code is sent.  Message texts are built at send time with
``gettext``: the request's locale is the citizen's language.  The code itself
is never logged nor audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from flask_babel import lazy_gettext as _l

from adapters.base import AuthResult, Challenge, Failure, Outcome, Redirect, Subject, SubjectKind, Success
from adapters.lockout import minutes
from adapters.port_errors import DeliveryFailed
from adapters.one_time_code import BAD_CODE, RESEND_TOO_SOON, TOO_MANY_ATTEMPTS, CodePolicy
from adapters.security_code import CODE_TEMPLATE, CodeVerdict, SecurityCodeKey, SecurityCodeSettings
from adapters.settings import SettingsError

STEP_ORDER = "step_order"
KEY_ALREADY_ACTIVE = "key_already_active"
DELIVERY_FAILED = "delivery_failed"
MAX_ADDRESS_SHOWN = 254   # characters of a typed address given back to the form

SENT_AGAIN = _l("Un nouveau code vous a été envoyé.")


@dataclass(frozen=True)
class SentCodeSettings(SecurityCodeSettings):
    code_ttl_seconds: int = 600          # how long a sent code may be typed
    max_code_attempts: int = 5           # checks of one challenge, whatever the resends
    resend_cooldown_seconds: int = 60    # between two sends of one challenge
    sends_per_account: int = 5           # codes sent to one person in send_window_seconds
    sends_per_address: int = 20          # codes asked from one network address in that window
    send_window_seconds: int = 3600

    def policy(self) -> CodePolicy:
        return CodePolicy(length=6, ttl_seconds=self.code_ttl_seconds, max_attempts=self.max_code_attempts,
                          resend_cooldown_seconds=self.resend_cooldown_seconds,
                          sends_per_account=self.sends_per_account, sends_per_address=self.sends_per_address,
                          send_window_seconds=self.send_window_seconds)

    def __post_init__(self) -> None:
        super().__post_init__()
        try:  # checked at start: a policy the engine would refuse fails here, not at the first login
            self.policy()
        except ValueError as exc:
            raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class Refusal:
    """Why a code was not sent: an error code, its parameters, the HTTP status."""

    error: str
    params: Mapping[str, Any]
    status: int


class SentCodeKey(SecurityCodeKey):
    Settings = SentCodeSettings
    ports = SecurityCodeKey.ports | {"codes"}   # a channel adds its own: "mailer" or "sms"
    messages = {KEY_ALREADY_ACTIVE: _l("Cette clé numérique est déjà activée.")}
    address_error: ClassVar[str]        # the error code of an address that cannot be one
    activate_template: ClassVar[str]    # the wizard's page (its three steps, by ``current``)

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self.policy = self.settings.policy()

    # --- channel hooks -------------------------------------------------------------
    def read_address(self, typed: str) -> str | None:
        """The typed address in its stored form, or None when it cannot be one."""
        raise NotImplementedError

    def mask(self, address: str) -> str:
        raise NotImplementedError

    def known_address(self, contact) -> str | None:
        """The person's address on record, to prefill step 1."""
        raise NotImplementedError

    def save_address(self, ports, person_fedid: str, address: str) -> None:
        """The person's record takes the confirmed address."""
        raise NotImplementedError

    def deliver(self, ports, to: str, code: str, *, registration: bool) -> None:
        """Send ``code`` to ``to``; raises (``idp.messaging.DeliveryFailed``) when it did not go."""
        raise NotImplementedError

    # --- sending, shared by login and activation ------------------------------------
    @property
    def valid_minutes(self) -> int:
        return minutes(self.policy.ttl_seconds)

    def _codes(self, ctx, registration: bool):
        return ctx.ports.codes(f"{self.id}-activation" if registration else self.id, self.policy)

    def _challenge(self, ctx, registration: bool) -> str:
        return f"{ctx.journey_id}:{self.id}:activation" if registration else f"{ctx.journey_id}:{self.id}"

    def _send(self, ctx, to: str, *, person_fedid: str, registration: bool) -> Refusal | None:
        """Issue a code through the engine and send it to ``to``; None when it went."""
        codes, challenge = self._codes(ctx, registration), self._challenge(ctx, registration)
        issued = codes.issue(challenge, account=person_fedid, remote_addr=ctx.remote_addr)
        if not issued.ok:
            if issued.error == RESEND_TOO_SOON:
                return Refusal(issued.error, {"seconds": issued.retry_after}, 429)
            return Refusal(issued.error, {"minutes": minutes(issued.retry_after)}, 429)
        try:
            self.deliver(ctx.ports, to, issued.code, registration=registration)
        except DeliveryFailed as exc:  # nobody has this code: it is withdrawn
            codes.cancel(challenge)
            self._audit(ctx, "code.delivery_failed", DELIVERY_FAILED, person_fedid=person_fedid,
                        registration=registration, to=self.mask(to), reason=str(exc)[:200])
            return Refusal(DELIVERY_FAILED, {}, 503)
        ctx.ports.audit.log("code.sent", key=self.id, person_fedid=person_fedid, to=self.mask(to),
                            registration=registration)
        return None

    @staticmethod
    def _verdict(checked) -> CodeVerdict:
        """The engine's answer as the shared login reads it (too many: the challenge is over)."""
        if checked.ok:
            return CodeVerdict(True)
        if checked.error == BAD_CODE:
            return CodeVerdict(False, BAD_CODE, {"attempts_left": checked.attempts_left})
        return CodeVerdict(False, checked.error, final=checked.error == TOO_MANY_ATTEMPTS)

    # --- login (hooks of SecurityCodeKey) ----------------------------------------------
    def send_code(self, ctx, record, contact) -> Outcome | None:
        refused = self._send(ctx, record.data.get("to", ""), person_fedid=record.person_fedid,
                             registration=False)
        if refused is None:
            return None
        codes, challenge = self._codes(ctx, False), self._challenge(ctx, False)
        if refused.error == RESEND_TOO_SOON and codes.waiting(challenge):
            return None  # the password again within the cooldown: the code already sent still stands
        # The code page, with the error and the resend button: "code" finds no code
        # waiting (code_expired), "resend" tries again once allowed.
        ctx.state["code_ready"] = True
        values = {**self.code_values(ctx, record, contact), "sent_to": None}
        return Challenge(CODE_TEMPLATE, values, error=refused.error, status=refused.status, params=refused.params)

    def check_code(self, ctx, typed: str, record) -> CodeVerdict:
        return self._verdict(self._codes(ctx, False).check(self._challenge(ctx, False), typed))

    def code_values(self, ctx, record, contact) -> dict:
        return {"sent_to": self.mask(record.data.get("to", "")), "valid_minutes": self.valid_minutes,
                "resend": True}

    def extra_step(self, ctx, step: str) -> Outcome:
        if step != "resend" or not ctx.state.get("code_ready") or ctx.state.get("renew"):
            return Failure("unknown_step")
        record = ctx.ports.credentials.of_person(key=self.id, person_fedid=ctx.state["fedid"])
        if record is None or not record.active:
            return Failure("key_not_active")
        values = self.code_values(ctx, record, None)
        if ctx.method != "POST":  # sending costs: only a form post does it
            return Challenge(CODE_TEMPLATE, values)
        refused = self._send(ctx, record.data.get("to", ""), person_fedid=record.person_fedid,
                             registration=False)
        if refused is not None:
            return Challenge(CODE_TEMPLATE, values, error=refused.error, status=refused.status,
                             params=refused.params)
        return Challenge(CODE_TEMPLATE, {**values, "notice": SENT_AGAIN})

    # --- activation ----------------------------------------------------------------------
    def activation_begin(self, ctx) -> Outcome:
        if ctx.person_fedid is None:  # the engine asks for a strong session first; never reached without
            return Failure("activation_level")
        if self.configured_for(ctx.person_fedid, ctx.ports):
            return Failure(KEY_ALREADY_ACTIVE)
        ctx.state.clear()
        contact = ctx.ports.people.get(ctx.person_fedid)
        return self._page(1, {"address": (self.known_address(contact) if contact else None) or ""})

    def activation_action(self, ctx, step: str) -> Outcome:
        if ctx.person_fedid is None:
            return Failure("activation_level")
        handler = {"address": self._act_address, "code": self._act_code, "resend": self._act_resend,
                   "confirm": self._act_confirm}.get(step)
        return handler(ctx) if handler else Failure("unknown_step")

    def _page(self, current: int, values: Mapping[str, Any] | None = None, *, error: str | None = None,
              status: int = 200, params: Mapping[str, Any] | None = None) -> Challenge:
        return Challenge(self.activate_template, {"current": current, "valid_minutes": self.valid_minutes,
                                                  **(values or {})},
                         error=error, status=status, params=dict(params or {}))

    def _act_address(self, ctx) -> Outcome:
        """Step 1: the address; a registration code goes there."""
        if ctx.method != "POST":
            return self._page(1, {"address": ctx.state.get("address", "")})
        typed = (ctx.form.get("address") or "").strip()[:MAX_ADDRESS_SHOWN]
        address = self.read_address(typed)
        if address is None:
            return self._page(1, {"address": typed}, error=self.address_error, status=400)
        refused = self._send(ctx, address, person_fedid=ctx.person_fedid, registration=True)
        if refused is not None:
            waiting = self._codes(ctx, True).waiting(self._challenge(ctx, True))
            if refused.error == RESEND_TOO_SOON and waiting and ctx.state.get("address") == address:
                return Redirect(ctx.url_for_step("code"))  # posted twice: the code already went there
            if refused.error == DELIVERY_FAILED:
                ctx.state.clear()  # no code is out: step 2 stays closed
            return self._page(1, {"address": typed}, error=refused.error, status=refused.status,
                              params=refused.params)
        ctx.state.clear()
        ctx.state["address"] = address  # the one address the waiting code proves
        return Redirect(ctx.url_for_step("code"))

    def _act_code(self, ctx) -> Outcome:
        """Step 2: the registration code typed back."""
        address = ctx.state.get("address")
        if not address or ctx.state.get("verified"):
            return Failure(STEP_ORDER)
        values = {"sent_to": address}
        if ctx.method != "POST":
            return self._page(2, values)
        typed = ctx.form.get("code") or ""
        if not typed.strip():
            return self._page(2, values, error="missing_code", status=400)
        verdict = self._verdict(self._codes(ctx, True).check(self._challenge(ctx, True), typed))
        if not verdict.ok:
            # The journey is left as read: a failed post must not win the compare-and-set
            # against a parallel post of the right code.  Too many: the engine refuses
            # every later code of this challenge (its count outlives a resend).
            self._audit(ctx, "key.activation_failed", verdict.error, person_fedid=ctx.person_fedid)
            return self._page(2, values, error=verdict.error, status=429 if verdict.final else 401,
                              params=verdict.params)
        ctx.state["verified"] = True
        return Redirect(ctx.url_for_step("confirm"))

    def _act_resend(self, ctx) -> Outcome:
        address = ctx.state.get("address")
        if not address or ctx.state.get("verified"):
            return Failure(STEP_ORDER)
        values = {"sent_to": address}
        if ctx.method != "POST":
            return self._page(2, values)
        refused = self._send(ctx, address, person_fedid=ctx.person_fedid, registration=True)
        if refused is not None:
            return self._page(2, values, error=refused.error, status=refused.status, params=refused.params)
        return self._page(2, {**values, "notice": SENT_AGAIN})

    def _act_confirm(self, ctx) -> Outcome:
        """Step 3, the only one that writes: the key becomes active here."""
        address = ctx.state.get("address")
        if not address or not ctx.state.get("verified"):
            return Failure(STEP_ORDER)
        if ctx.method != "POST":
            return self._page(3, {"sent_to": address})
        ports = ctx.ports
        if not ports.credentials.activate(key=self.id, person_fedid=ctx.person_fedid, data={"to": address}):
            # Activated meanwhile (a parallel post, another journey).  A page, not a Failure:
            # a Failure writes to the journey and would make the winner's completion lose.
            return self._page(3, {"sent_to": address}, error=KEY_ALREADY_ACTIVE, status=409)
        self.save_address(ports, ctx.person_fedid, address)
        ctx.state.clear()
        return Success(AuthResult(subject=Subject(SubjectKind.FEDID, ctx.person_fedid), key=self.id,
                                  level=self.level, authn_instant=ports.clock.now()))
