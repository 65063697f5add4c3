"""Small parts the security-code keys share: sealed seeds, masked contacts,
the forms of e-mail addresses and mobile numbers."""
from __future__ import annotations

import pytest

from adapters.contacts import email_address, mobile_number
from adapters.masking import mask_email, mask_phone
from idp.people.sealing import SealBroken, Sealer


def test_a_sealed_seed_opens_only_for_its_owner_and_key():
    sealer = Sealer(b"x" * 32)
    sealed = sealer.seal("JBSWY3DPEHPK3PXP", owner="fedid-1:totp")
    assert "JBSWY3DPEHPK3PXP" not in sealed and sealed.startswith("v1.")
    assert sealer.open(sealed, owner="fedid-1:totp") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SealBroken):
        sealer.open(sealed, owner="fedid-2:totp")  # copied onto another person's credential
    with pytest.raises(SealBroken):
        Sealer(b"y" * 32).open(sealed, owner="fedid-1:totp")
    with pytest.raises(SealBroken):
        sealer.open(sealed[:-4] + "AAAA", owner="fedid-1:totp")
    assert sealer.seal("same", owner="o") != sealer.seal("same", owner="o")  # a fresh nonce each time


def test_masks_as_the_guide_shows_them():
    assert mask_email("marouan_ey@hotmail.com") == "m*****@hotmail.com"
    assert mask_phone("+32470123456") == "+32 *** ** ** 56"
    assert mask_email("broken") == "*****"


@pytest.mark.parametrize("typed, stored", [
    ("marie.dupont@example.be", "marie.dupont@example.be"),
    ("  Marie@Example.BE ", "Marie@example.be"),
    ("a@b", None), ("a@@b.be", None), ("a b@c.be", None), (".a@b.be", None), ("a..b@c.be", None),
    ("a@-b.be", None), ("x" * 65 + "@b.be", None), ("a@b.123", None), ("", None), (None, None),
    ("a@b.be\r\nBcc: x@y.be", None),
])
def test_email_addresses(typed, stored):
    assert email_address(typed) == stored


@pytest.mark.parametrize("typed, stored", [
    ("+32 470 12 34 56", "+32470123456"), ("0470/12.34.56", "+32470123456"), ("0032470123456", "+32470123456"),
    ("+33 6 12 34 56 78", "+33612345678"), ("+32 2 123 45 67", None), ("04701", None), ("+32abc", None),
    ("", None), ("+0470123456", None),
])
def test_mobile_numbers(typed, stored):
    assert mobile_number(typed) == stored
