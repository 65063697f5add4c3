"""How a contact is shown to someone who has not yet proved who they are
(DESIGN.md §6): enough to recognise one's own address, not enough to learn it.

``mask_email("marouan_ey@hotmail.com") == "m*****@hotmail.com"`` (the guide's
form: the first letter, five stars whatever the length, the domain);
``mask_phone("+32470123456") == "+32 *** ** ** 56"`` (the country code and the
last two digits).
"""
from __future__ import annotations


def mask_email(address: str) -> str:
    local, at, domain = (address or "").partition("@")
    if not at or not local:
        return "*****"
    return f"{local[0]}*****@{domain}"


def mask_phone(number: str) -> str:
    digits = "".join(c for c in (number or "") if c.isdigit())
    if len(digits) < 6:
        return "*** ** **"
    country = "+" + digits[:2] if (number or "").startswith("+") else ""
    return f"{country} *** ** ** {digits[-2:]}".strip()
