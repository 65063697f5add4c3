"""Levels of assurance and requested authentication contexts (idp/sessions/levels.py,
DESIGN.md §3, SAML core §3.3.2.2.1)."""
from __future__ import annotations

import pytest

from idp.sessions.levels import (EIDAS_OF_LEVEL, PASSWORD_PROTECTED, Comparison, Level, LevelRequirement,
                        context_class, level_of_context, requirement_from)

FAS = "urn:be:fedict:iam:fas:citizen:Level"
EIDAS = "http://eidas.europa.eu/LoA/"
ALL = list(Level)


def accepted(class_refs, comparison, key_classes=None) -> list[int]:
    requirement = requirement_from(class_refs, comparison, key_classes)
    assert requirement is not None
    return [int(level) for level in ALL if requirement.accepts(level)]


def test_the_scale_is_ordered_as_in_the_design():
    assert [int(level) for level in Level] == [100, 200, 300, 400, 500]
    assert Level.PASSWORD < Level.EMAIL_CODE < Level.SMS_CODE < Level.APP_CODE < Level.EID


@pytest.mark.parametrize("level", ALL)
def test_context_class_round_trips_through_fas_uri(level):
    assert context_class(level) == f"{FAS}{int(level)}"
    assert level_of_context(context_class(level)) == int(level)


@pytest.mark.parametrize("ref,level", [
    (f"{FAS}100", 100), (f"{FAS}300", 300), (f"{FAS}500", 500),
    (f"{EIDAS}low", 100), (f"{EIDAS}substantial", 300), (f"{EIDAS}high", 500),
    (PASSWORD_PROTECTED, 100),
])
def test_known_class_refs(ref, level):
    assert level_of_context(ref) == level


@pytest.mark.parametrize("ref", [
    f"{FAS}", f"{FAS}high", f"{FAS}-100", f"{FAS}1 00", f"{EIDAS}medium", f"{EIDAS}", f"{EIDAS}High",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos", "urn:be:fedict:iam:fas:Level500",
    "https://eidas.europa.eu/LoA/high", "",
])
def test_unknown_class_refs(ref):
    assert level_of_context(ref) is None
    assert requirement_from([ref], "minimum") is None
    assert requirement_from([ref], "exact") is None


def test_eidas_level_of_each_level_matches_the_design_table():
    assert EIDAS_OF_LEVEL == {100: "low", 200: "low", 300: "substantial", 400: "substantial", 500: "high"}


def test_key_specific_class_refs():
    classes = {"urn:example:key:totp": 400}
    assert level_of_context("urn:example:key:totp", classes) == 400
    assert level_of_context("urn:example:key:totp") is None
    assert accepted(["urn:example:key:totp"], "minimum", classes) == [400, 500]


# --- SAML core §3.3.2.2.1 ---------------------------------------------------------
@pytest.mark.parametrize("comparison,expected", [
    ("exact", [300]),
    ("minimum", [300, 400, 500]),
    ("better", [400, 500]),
    ("maximum", [100, 200, 300]),
])
def test_comparisons_over_one_class_ref(comparison, expected):
    assert accepted([f"{FAS}300"], comparison) == expected


def test_comparison_defaults_to_exact():
    """SAML core §3.3.2.2.1: "If Comparison is not specified, the default is exact"."""
    assert accepted([f"{FAS}200"], None) == [200]
    assert requirement_from([f"{FAS}200"], None).comparison is Comparison.EXACT


def test_exact_accepts_any_of_several_refs():
    assert accepted([f"{FAS}100", f"{FAS}500"], "exact") == [100, 500]


def test_minimum_is_met_by_the_weakest_of_several_refs():
    """"at least as strong as ... one of the authentication contexts specified"."""
    assert accepted([f"{FAS}400", f"{FAS}200"], "minimum") == [200, 300, 400, 500]


def test_maximum_is_bounded_by_the_strongest_of_several_refs():
    """"without exceeding the strength of at least one of the authentication contexts specified"."""
    assert accepted([f"{FAS}200", f"{FAS}400"], "maximum") == [100, 200, 300, 400]


@pytest.mark.parametrize("refs,comparison,expected", [
    ([f"{EIDAS}substantial"], "minimum", [300, 400, 500]),
    ([f"{EIDAS}high"], "minimum", [500]),
    ([f"{EIDAS}low"], "minimum", [100, 200, 300, 400, 500]),
    ([f"{EIDAS}high"], "better", []),
    ([PASSWORD_PROTECTED], "exact", [100]),
    ([PASSWORD_PROTECTED], "better", [200, 300, 400, 500]),
])
def test_eidas_and_password_protected_refs(refs, comparison, expected):
    assert accepted(refs, comparison) == expected


def test_unknown_refs_among_known_ones_are_ignored():
    assert accepted(["urn:example:unknown", f"{FAS}400"], "minimum") == [400, 500]


@pytest.mark.parametrize("comparison", ["Minimum", "at_least", "EXACT", "better "])
def test_unknown_comparison_gives_no_requirement(comparison):
    assert requirement_from([f"{FAS}100"], comparison) is None


def test_no_class_ref_means_no_requirement():
    requirement = requirement_from([], "minimum")
    assert requirement == LevelRequirement(Comparison.MINIMUM, ())
    assert all(requirement.accepts(level) for level in ALL)
    assert requirement_from([], "bogus") is None


def test_non_ascii_digits_are_unknown_not_an_error():
    assert level_of_context(f"{FAS}\u00b2") is None
