"""Levels of assurance and requested authentication contexts (idp/sessions/levels.py,
DESIGN.md §3, SAML core §3.3.2.2.1)."""
from __future__ import annotations

import tomllib

import pytest

from idp.app.config import DEFAULTS_FILE, load_settings
from idp.sessions.levels import PASSWORD_PROTECTED, Comparison, LevelRequirement, LevelTable, context_class

FAS = "urn:be:fedict:iam:fas:citizen:Level"
EIDAS = "http://eidas.europa.eu/LoA/"
# The table is configuration only: the tests read it where Sésame does (idp/app/defaults.toml).
DEFAULT_LEVELS = load_settings(environ={})["levels"]
TOTP = "urn:example:key:totp"
SMS = "urn:example:key:sms"
TABLE = LevelTable.from_settings(DEFAULT_LEVELS)
KEYED = LevelTable.from_settings(DEFAULT_LEVELS, {TOTP: ("totp", 400), SMS: ("sms", 300)})
ALL = list(TABLE.scale)


def accepted(class_refs, comparison, table=TABLE, key=None) -> list[int]:
    requirement = table.requirement(class_refs, comparison)
    assert requirement is not None
    return [level for level in ALL if requirement.accepts(level, key)]


# --- the table comes from configuration ---------------------------------------------
def test_the_default_scale_is_ordered_as_in_the_design():
    assert TABLE.scale == (100, 200, 300, 400, 500)
    assert dict(TABLE.eidas) == {"low": (100, 200), "substantial": (300, 400), "high": (500, 500)}


def test_defaults_toml_carries_the_levels_of_the_design():
    with DEFAULTS_FILE.open("rb") as fh:
        section = tomllib.load(fh)["levels"]
    assert section == {"scale": [100, 200, 300, 400, 500], "eidas_low": [100, 200],
                       "eidas_substantial": [300, 400], "eidas_high": [500, 500]}


def test_a_modified_levels_section_changes_what_is_accepted():
    settings = load_settings(environ={}, overrides={"levels": {"eidas_substantial": [300, 300]}})
    table = LevelTable.from_settings(settings["levels"])
    assert accepted([f"{EIDAS}substantial"], "exact", table) == [300]
    assert accepted([f"{EIDAS}substantial"], "exact") == [300, 400]
    assert table.eidas_name(400) == "substantial"  # in no range: the highest eIDAS level below it


def test_an_environment_override_reaches_the_table():
    settings = load_settings(environ={"SESAME_LEVELS_SCALE": "[100, 200, 300, 400, 500, 600]",
                                      "SESAME_LEVELS_EIDAS_HIGH": "[500, 600]"})
    table = LevelTable.from_settings(settings["levels"])
    assert table.scale[-1] == 600
    assert [lv for lv in table.scale if table.requirement([f"{EIDAS}high"], "exact").accepts(lv)] == [500, 600]
    assert table.stated_class(level=600, key="x", class_refs=[f"{EIDAS}high"], comparison="minimum") == \
        f"{EIDAS}high"


@pytest.mark.parametrize("change,message", [
    ({"scale": [100, 300, 200, 400, 500]}, "strictly increasing"),
    ({"scale": [100, 200, 200, 400, 500]}, "strictly increasing"),
    ({"scale": [0, 100, 200, 300, 400, 500]}, "positive"),
    ({"scale": []}, "non-empty"),
    ({"scale": [100, "200", 300, 400, 500]}, "integer"),
    ({"scale": [True, 200, 300, 400, 500]}, "integer"),
    ({"eidas_substantial": [300, 450]}, "450 not in the scale"),
    ({"eidas_high": [500, 600]}, "600 not in the scale"),
    ({"eidas_low": [200, 100]}, "above highest"),
    ({"eidas_low": [100]}, "expected [lowest, highest]"),
    ({"eidas_low": [100, 300]}, "must lie below"),
    ({"eidas_medium": [300, 300]}, "unknown setting"),
])
def test_a_bad_levels_section_is_refused(change, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        LevelTable.from_settings({**DEFAULT_LEVELS, **change})


@pytest.mark.parametrize("classes,message", [
    ({TOTP: ("totp", 450)}, "not in the scale"),
    ({f"{FAS}400": ("totp", 400)}, "must not be"),
    ({f"{EIDAS}substantial": ("totp", 400)}, "must not be"),
])
def test_a_bad_key_class_is_refused(classes, message):
    with pytest.raises(ValueError, match=message):
        LevelTable.from_settings(DEFAULT_LEVELS, classes)


# --- reading requested classes --------------------------------------------------------
@pytest.mark.parametrize("level", ALL)
def test_context_class_round_trips_through_fas_uri(level):
    assert context_class(level) == f"{FAS}{level}"
    assert TABLE.range_of(context_class(level)) == (level, level)


@pytest.mark.parametrize("ref,levels", [
    (f"{FAS}100", (100, 100)), (f"{FAS}300", (300, 300)), (f"{FAS}500", (500, 500)),
    (f"{EIDAS}low", (100, 200)), (f"{EIDAS}substantial", (300, 400)), (f"{EIDAS}high", (500, 500)),
    (PASSWORD_PROTECTED, (100, 100)),
])
def test_known_class_refs(ref, levels):
    assert TABLE.range_of(ref) == levels


@pytest.mark.parametrize("ref", [
    f"{FAS}", f"{FAS}high", f"{FAS}-100", f"{FAS}1 00", f"{EIDAS}medium", f"{EIDAS}", f"{EIDAS}High",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos", "urn:be:fedict:iam:fas:Level500",
    "https://eidas.europa.eu/LoA/high", "", TOTP,
])
def test_unknown_class_refs(ref):
    assert TABLE.range_of(ref) is None
    assert TABLE.requirement([ref], "minimum") is None
    assert TABLE.requirement([ref], "exact") is None


def test_non_ascii_digits_are_unknown_not_an_error():
    assert TABLE.range_of(f"{FAS}\u00b2") is None
    assert TABLE.requirement([f"{FAS}\u0663\u0660\u0660"], "exact") is None  # Arabic-Indic 300


# --- SAML core §3.3.2.2.1 -----------------------------------------------------------
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
    assert TABLE.requirement([f"{FAS}200"], None).comparison is Comparison.EXACT


def test_exact_accepts_any_of_several_refs():
    assert accepted([f"{FAS}100", f"{FAS}500"], "exact") == [100, 500]


def test_minimum_is_met_by_the_weakest_of_several_refs():
    """"at least as strong as ... one of the authentication contexts specified"."""
    assert accepted([f"{FAS}400", f"{FAS}200"], "minimum") == [200, 300, 400, 500]


def test_maximum_is_bounded_by_the_strongest_of_several_refs():
    """"without exceeding the strength of at least one of the authentication contexts specified"."""
    assert accepted([f"{FAS}200", f"{FAS}400"], "maximum") == [100, 200, 300, 400]


@pytest.mark.parametrize("refs,comparison,expected", [
    ([f"{EIDAS}substantial"], "exact", [300, 400]),
    ([f"{EIDAS}substantial"], "minimum", [300, 400, 500]),
    ([f"{EIDAS}substantial"], "maximum", [100, 200, 300, 400]),
    ([f"{EIDAS}substantial"], "better", [500]),
    ([f"{EIDAS}low"], "exact", [100, 200]),
    ([f"{EIDAS}low"], "better", [300, 400, 500]),
    ([f"{EIDAS}low"], "minimum", [100, 200, 300, 400, 500]),
    ([f"{EIDAS}high"], "minimum", [500]),
    ([f"{EIDAS}high"], "better", []),
    ([f"{EIDAS}low", f"{EIDAS}high"], "exact", [100, 200, 500]),
    ([f"{EIDAS}substantial", f"{FAS}200"], "minimum", [200, 300, 400, 500]),
    ([PASSWORD_PROTECTED], "exact", [100]),
    ([PASSWORD_PROTECTED], "better", [200, 300, 400, 500]),
])
def test_eidas_levels_are_ranges(refs, comparison, expected):
    assert accepted(refs, comparison) == expected


def test_eidas_substantial_is_met_by_300_and_400_not_200():
    for comparison in ("exact", "minimum"):
        requirement = TABLE.requirement([f"{EIDAS}substantial"], comparison)
        assert requirement.accepts(300) and requirement.accepts(400)
        assert not requirement.accepts(200)
    maximum = TABLE.requirement([f"{EIDAS}substantial"], "maximum")
    assert maximum.accepts(400) and not maximum.accepts(500)
    better = TABLE.requirement([f"{EIDAS}low"], "better")
    assert better.accepts(300) and not better.accepts(200)


def test_unknown_refs_among_known_ones_are_ignored():
    assert accepted(["urn:example:unknown", f"{FAS}400"], "minimum") == [400, 500]


@pytest.mark.parametrize("comparison", ["Minimum", "at_least", "EXACT", "better "])
def test_unknown_comparison_gives_no_requirement(comparison):
    assert TABLE.requirement([f"{FAS}100"], comparison) is None


def test_no_class_ref_means_no_requirement():
    requirement = TABLE.requirement([], "minimum")
    assert requirement == LevelRequirement(Comparison.MINIMUM, ())
    assert all(requirement.accepts(level, key) for level in ALL for key in (None, "totp"))
    assert TABLE.requirement([], "bogus") is None


# --- keys' own classes ----------------------------------------------------------------
def test_a_key_class_with_exact_restricts_to_that_key():
    requirement = KEYED.requirement([TOTP], "exact")
    assert requirement.keys == frozenset({"totp"})
    assert requirement.accepts(400, "totp")
    assert not requirement.accepts(400, "app")   # same level, another key
    assert not requirement.accepts(400)          # key unknown: not vouched for
    assert not requirement.accepts(500, "totp")  # exact: its own level only


def test_a_key_class_with_minimum_is_its_level_for_every_key():
    requirement = KEYED.requirement([TOTP], "minimum")
    assert requirement.keys is None
    assert requirement.accepts(400, "app") and requirement.accepts(500, "eid")
    assert not requirement.accepts(300, "sms")
    assert accepted([TOTP], "minimum", KEYED) == [400, 500]


def test_a_key_class_among_other_classes_binds_only_its_own_range():
    requirement = KEYED.requirement([TOTP, f"{FAS}500"], "exact")
    assert requirement.keys is None
    assert requirement.accepts(400, "totp") and requirement.accepts(500, "eid")
    assert not requirement.accepts(400, "app")
    both = KEYED.requirement([TOTP, SMS], "exact")
    assert both.keys == frozenset({"totp", "sms"})
    assert both.accepts(300, "sms") and both.accepts(400, "totp")
    assert not both.accepts(300, "totp")  # sms's class, not totp's


def test_a_key_class_is_unknown_to_a_table_without_it():
    assert TABLE.requirement([TOTP], "exact") is None
    assert accepted([TOTP, f"{FAS}300"], "exact", TABLE, key="totp") == [300]


# --- what a response states -------------------------------------------------------------
@pytest.mark.parametrize("level,name", [
    (100, "low"), (200, "low"), (300, "substantial"), (400, "substantial"), (500, "high"), (50, None),
    (700, "high"),
])
def test_eidas_name_of_a_level(level, name):
    assert TABLE.eidas_name(level) == name


def test_a_gap_between_eidas_ranges_states_the_level_below():
    table = LevelTable.from_settings({**DEFAULT_LEVELS, "eidas_low": [100, 100]})
    assert table.eidas_name(200) == "low"
    assert LevelTable.from_settings({**DEFAULT_LEVELS, "eidas_low": [200, 200]}).eidas_name(100) is None


@pytest.mark.parametrize("refs,comparison,level,key,stated", [
    # eIDAS request -> eIDAS class of the level reached
    ([f"{EIDAS}substantial"], "exact", 400, "totp", f"{EIDAS}substantial"),
    ([f"{EIDAS}substantial"], "minimum", 500, "eid", f"{EIDAS}high"),
    ([f"{EIDAS}low"], "minimum", 300, "sms", f"{EIDAS}substantial"),
    ([f"{EIDAS}high"], "maximum", 200, "mail", f"{EIDAS}low"),
    (["urn:example:unknown", f"{EIDAS}low"], "minimum", 400, "totp", f"{EIDAS}substantial"),
    # FAS request -> FAS class
    ([f"{FAS}300", f"{FAS}400"], "exact", 400, "totp", f"{FAS}400"),
    ([f"{FAS}300"], "minimum", 500, "eid", f"{FAS}500"),
    ([f"{FAS}300", f"{EIDAS}substantial"], "minimum", 400, "totp", f"{FAS}400"),
    ([f"{FAS}400", f"{EIDAS}substantial"], "exact", 300, "sms", f"{EIDAS}substantial"),
    # a key's own class -> that class, from that key only
    ([TOTP], "exact", 400, "totp", TOTP),
    ([TOTP], "minimum", 400, "totp", TOTP),
    ([TOTP], "minimum", 500, "eid", f"{FAS}500"),
    ([TOTP, SMS], "exact", 300, "sms", SMS),
    # PasswordProtectedTransport at 100 only
    ([PASSWORD_PROTECTED], "exact", 100, "password", PASSWORD_PROTECTED),
    ([PASSWORD_PROTECTED], "minimum", 300, "sms", f"{FAS}300"),
    # no request: Sésame's own class
    ([], None, 300, "sms", f"{FAS}300"),
    (["urn:example:unknown"], "minimum", 200, "mail", f"{FAS}200"),
])
def test_the_response_states_the_vocabulary_asked_in(refs, comparison, level, key, stated):
    assert KEYED.stated_class(level=level, key=key, class_refs=refs, comparison=comparison) == stated


@pytest.mark.parametrize("refs", [
    [f"{FAS}300", f"{FAS}400"], [f"{EIDAS}substantial"], [f"{EIDAS}low", f"{FAS}400"], [TOTP, f"{FAS}300"],
    [PASSWORD_PROTECTED, f"{EIDAS}high"], [f"{FAS}200", TOTP, f"{EIDAS}high"],
])
@pytest.mark.parametrize("key", ["totp", "other"])
def test_exact_states_a_requested_class_whenever_the_level_satisfies(refs, key):
    requirement = KEYED.requirement(refs, "exact")
    for level in ALL:
        if requirement.accepts(level, key):
            assert KEYED.stated_class(level=level, key=key, class_refs=refs, comparison="exact") in refs
