"""A new password when the old one has expired (``[keys.password]
password_lifetime_days``): the ``renew`` step of every key that asks for the
password key's password (the password key, the security-code keys), written
once."""
from __future__ import annotations

from adapters.base import Challenge, Failure, Outcome

RENEW_TEMPLATE = "security_code/renew.html"  # adapters/templates/: shared by those keys
PASSWORDS_DIFFER = "passwords_differ"
MAX_PASSWORD = 1024  # characters read from the form (idp/people/password_policy.py refuses longer ones)


def renew_expired_password(ctx, *, on_renewed=None) -> Outcome | None:
    """The ``renew`` step of any key that asks for the password key's password.

    The key has checked the password, found it expired, and put ``username``,
    ``fedid`` and ``renew=True`` in ``ctx.state``.  Returns the page to show (the
    form, or the form with its error) or a ``Failure``; None once the new
    password (new twice, judged by the policy) is stored, ``renew`` cleared,
    ``on_renewed()`` called: the key goes on (a Success, or its code step).
    The change is compare-and-set on the expired hash: of two parallel posts,
    one stores its password, the other is refused.
    """
    if not ctx.state.get("renew"):  # only after a right, expired password
        return Failure("unknown_step")
    if ctx.method != "POST":
        return Challenge(RENEW_TEMPLATE)
    credentials = ctx.ports.credentials
    new, again = (ctx.form.get("password") or "")[:MAX_PASSWORD], ctx.form.get("confirm") or ""
    if new != again:
        return Challenge(RENEW_TEMPLATE, error=PASSWORDS_DIFFER, status=400)
    problems = credentials.password_problems(new, username=ctx.state["username"])
    if problems:
        return Challenge(RENEW_TEMPLATE, error=problems[0], status=400,
                         params={"min_length": credentials.rules.min_length, "max_length": MAX_PASSWORD})
    login = credentials.of_person(key="password", person_fedid=ctx.state["fedid"])
    if login is None or not credentials.set_password(login, new):
        return Failure("journey_conflict")
    ctx.state.pop("renew")
    if on_renewed is not None:
        on_renewed()
    return None


