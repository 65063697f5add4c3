"""The errors the ports raise (``adapters.base.Adapter.ports``), defined on the
keys' side of the boundary: keys catch them by name without importing
``idp``, and ``idp`` raises these very classes."""
from __future__ import annotations


class DeliveryFailed(RuntimeError):
    """The ``mailer`` or ``sms`` port could not hand the message over."""


class SealBroken(ValueError):
    """A value of the ``sealer`` port that does not open: altered, for another
    owner, or under another key."""


class UsernameUnavailable(ValueError):
    """A new username (``credentials`` port) that cannot be one, or is someone
    else's: ``code`` says which."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
