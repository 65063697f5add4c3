"""metadata.policy: a portal's policy, checked field by field, and its JSON form."""
from __future__ import annotations

import json

import pytest

from metadata.errors import MetadataError
from metadata.policy import NameIdFormat, PortalPolicy, SignMode, policy_from_mapping

KEYS = ("password", "eid", "itsme", "totp", "email_code", "sms_code", "token", "eidas")
LEVELS = (100, 200, 300, 400, 500)


def build(d):
    return policy_from_mapping(d, known_keys=KEYS, levels=LEVELS)


def refused(d) -> str:
    with pytest.raises(MetadataError) as info:
        build(d)
    assert info.value.code == "bad_metadata"
    return info.value.detail


def test_defaults():
    policy = build({})
    assert policy == PortalPolicy()
    assert policy.accepted_keys == () and policy.min_level == 100 and policy.attributes == ()
    assert policy.nameid_format == "transient" and policy.sign == "metadata" and policy.display_name is None
    assert policy.encrypt_assertions is False


def test_full_policy_round_trips_through_json():
    policy = build({
        "accepted_keys": ["eid", "itsme", "eid"], "min_level": 400,
        "attributes": ["surname", "givenName"], "nameid_format": "persistent", "sign": "both",
        "display_name": "  FSE   21-27 ", "require_signed_requests": True, "encrypt_assertions": True,
    })
    assert policy.accepted_keys == ("eid", "itsme")  # duplicates dropped, order kept
    assert policy.nameid_format is NameIdFormat.PERSISTENT and policy.sign is SignMode.BOTH
    assert policy.display_name == "FSE 21-27"
    assert policy.encrypt_assertions is True
    stored = json.loads(json.dumps(policy.to_mapping()))
    assert stored["nameid_format"] == "persistent" and stored["attributes"] == ["surname", "givenName"]
    assert build(stored) == policy


@pytest.mark.parametrize("d, fragment", [
    ({"attributes": ["surname", "shoeSize"]}, "unknown attribute 'shoeSize'"),
    ({"attributes": "surname"}, "attributes must be a list of strings"),
    ({"accepted_keys": ["eid", "carrier_pigeon"]}, "unknown key id 'carrier_pigeon'"),
    ({"accepted_keys": [1]}, "must be a list of strings"),
    ({"min_level": 250}, "min_level 250 is not a configured level"),
    ({"min_level": "500"}, "min_level must be an integer"),
    ({"min_level": True}, "min_level must be an integer"),
    ({"nameid_format": "emailAddress"}, "nameid_format: unknown value 'emailAddress'"),
    ({"nameid_format": "email", "attributes": ["surname"]}, "nameid_format 'email' releases the e-mail address"),
    ({"sign": "never"}, "sign: unknown value 'never'"),
    ({"display_name": 3}, "display_name must be a string"),
    ({"display_name": "x" * 201}, "longer than 200"),
    ({"require_signed_requests": "yes"}, "require_signed_requests must be true or false"),
    ({"encrypt_assertions": 1}, "encrypt_assertions must be true or false"),
    ({"encrypt_assertions": "true"}, "encrypt_assertions must be true or false"),
    ({"attribute": ["surname"]}, "unknown policy field(s): 'attribute'"),
])
def test_invalid_policies_refused(d, fragment):
    assert fragment in refused(d)


def test_email_nameid_format_with_mail_released():
    policy = build({"nameid_format": "email", "attributes": ["mail"]})
    assert policy.nameid_format is NameIdFormat.EMAIL
    stored = json.loads(json.dumps(policy.to_mapping()))
    assert stored["nameid_format"] == "email" and build(stored) == policy


def test_policy_stored_before_encrypt_assertions_still_loads():
    stored = PortalPolicy(attributes=("surname",)).to_mapping()
    assert stored["encrypt_assertions"] is False
    del stored["encrypt_assertions"]
    assert build(stored) == PortalPolicy(attributes=("surname",))


def test_non_mapping_refused():
    assert "must be a mapping" in refused(["eid"])


def test_levels_come_from_configuration():
    assert policy_from_mapping({"min_level": 3}, known_keys=KEYS, levels=[1, 2, 3]).min_level == 3
    with pytest.raises(MetadataError):
        policy_from_mapping({"min_level": 100}, known_keys=KEYS, levels=[1, 2, 3])


@pytest.mark.parametrize("sign, want, expected", [
    ("metadata", True, (False, True)),
    ("metadata", False, (True, False)),
    ("assertion", False, (False, True)),
    ("response", False, (True, False)),
    ("response", True, (True, True)),   # WantAssertionsSigned is always honoured
    ("both", False, (True, True)),
])
def test_signing_modes(sign, want, expected):
    signing = build({"sign": sign}).signing(want_assertions_signed=want)
    assert (signing.response, signing.assertion) == expected
