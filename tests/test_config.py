"""Configuration layers (idp/app/config.py, DESIGN.md §7, §8.8):
built-in defaults < TOML file < SESAME_<SECTION>_<KEY> environment < overrides."""
from __future__ import annotations

from pathlib import Path

import pytest

from idp.app.config import load_settings
from idp.errors import ConfigError


@pytest.fixture
def conf_file(tmp_path) -> Path:
    path = tmp_path / "sesame.toml"
    path.write_text("""
[server]
base_url = "https://file.example.be/"
proxies = 1

[saml]
clock_skew_seconds = 60
organization = "Fichier"

[session]
lifetime_seconds = 3600
""", encoding="utf-8")
    return path


def test_defaults_alone():
    settings = load_settings(None, environ={})
    assert settings["server"]["base_url"] == "http://localhost:8080"
    assert settings["saml"]["clock_skew_seconds"] == 120
    assert settings.enabled_keys == ["password"]
    assert settings.demo is False
    assert settings.languages == ["fr", "nl", "de", "en"]
    assert settings.entity_id == "http://localhost:8080/saml/metadata"


def test_each_layer_wins_over_the_one_below(conf_file):
    environ = {"SESAME_SAML_CLOCK_SKEW_SECONDS": "30", "SESAME_SESSION_LIFETIME_SECONDS": "1800"}
    overrides = {"session": {"lifetime_seconds": 900}}
    settings = load_settings(conf_file, overrides, environ=environ)
    assert settings["saml"]["max_message_bytes"] == 200000                # default, untouched
    assert settings["server"]["proxies"] == 1                             # file over default
    assert settings["saml"]["organization"] == "Fichier"                  # file over default
    assert settings["saml"]["clock_skew_seconds"] == 30                   # environment over file
    assert settings["session"]["lifetime_seconds"] == 900                 # overrides over environment
    assert settings["session"]["transaction_ttl_seconds"] == 900          # default kept beside a file value
    assert settings.base_url == "https://file.example.be"                 # trailing slash dropped
    assert settings.entity_id == "https://file.example.be/saml/metadata"


def test_file_named_by_sesame_config(conf_file):
    settings = load_settings(None, environ={"SESAME_CONFIG": str(conf_file)})
    assert settings["server"]["proxies"] == 1
    explicit = conf_file.with_name("other.toml")
    explicit.write_text("[server]\nproxies = 3\n", encoding="utf-8")
    assert load_settings(explicit, environ={"SESAME_CONFIG": str(conf_file)})["server"]["proxies"] == 3


def test_overrides_merge_into_sections_without_dropping_siblings():
    settings = load_settings(None, {"keys": {"password": {"max_failures": 3}}}, environ={})
    assert settings["keys"]["password"] == {"level": 100, "max_failures": 3, "lockout_seconds": 900}
    assert settings.key_settings() == {"password": {"level": 100, "max_failures": 3, "lockout_seconds": 900}}


def test_overrides_do_not_leak_into_later_loads():
    first = load_settings(None, {"keys": {"enabled": ["password", "x"]}}, environ={})
    first["keys"]["password"]["level"] = 999
    again = load_settings(None, environ={})
    assert again.enabled_keys == ["password"]
    assert again["keys"]["password"]["level"] == 100


@pytest.mark.parametrize("name,raw,value", [
    ("SESAME_SERVER_PROXIES", "2", 2),
    ("SESAME_SAML_CLOCK_SKEW_SECONDS", "-7", -7),
    ("SESAME_SERVER_DEMO", "true", True),
    ("SESAME_SERVER_DEMO", "false", False),
    ("SESAME_KEYS_ENABLED", '["password", "totp"]', ["password", "totp"]),
    ("SESAME_I18N_LANGUAGES", "['nl']", ["nl"]),
    ("SESAME_SAML_ORGANIZATION", '"Quoted, with = signs"', "Quoted, with = signs"),
])
def test_environment_values_are_toml_literals(name, raw, value):
    section, key = name[len("SESAME_"):].lower().split("_", 1)
    settings = load_settings(None, environ={name: raw})
    assert settings[section][key] == value
    assert type(settings[section][key]) is type(value)


@pytest.mark.parametrize("raw", [
    "https://idp.example.be",
    "postgresql+psycopg://sesame@db:5432/sesame",
    "redis://cache:6379/0",
    "plain words with spaces",
    "/var/lib/sesame",
    "",
    "[unclosed",
])
def test_environment_values_that_are_no_toml_literal_stay_strings(raw):
    settings = load_settings(None, environ={"SESAME_STORE_URL": raw})
    assert settings["store"]["url"] == raw


def test_environment_sets_typed_values_used_by_settings():
    settings = load_settings(None, environ={
        "SESAME_SERVER_DEMO": "true", "SESAME_KEYS_ENABLED": '["password"]',
        "SESAME_SERVER_DATA_DIR": "/srv/sesame", "SESAME_DATABASE_URL": "sqlite:////srv/s.db",
        "SESAME_I18N_LANGUAGES": '["nl", "fr"]'})
    assert settings.demo is True
    assert settings.data_dir == Path("/srv/sesame")
    assert settings.database_url == "sqlite:////srv/s.db"
    assert settings.languages == ["nl", "fr"]


def test_database_url_defaults_to_sqlite_in_data_dir(tmp_path):
    settings = load_settings(None, {"server": {"data_dir": str(tmp_path)}}, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'sesame.db'}"


@pytest.mark.parametrize("name", ["SESAME_SERVER_BASE_ULR", "SESAME_SAML_NOPE", "SESAME_KEYS_PASSWORD_LEVEL"])
def test_environment_for_an_unknown_key_raises(name):
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={name: "1"})
    assert raised.value.code == "config"
    assert name in raised.value.detail


def test_environment_outside_our_sections_is_ignored():
    settings = load_settings(None, environ={
        "SESAME_CONFIG": "", "SESAME_NEW_PASSWORD": "secret",  # the CLI's own variables
        "SESAME": "x", "SESAMEX_SERVER_PROXIES": "9", "OTHER_SERVER_PROXIES": "9", "PATH": "/bin"})
    assert settings["server"]["proxies"] == 0


def test_broken_toml_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('[server]\nbase_url = "unterminated\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(broken, environ={})
    assert raised.value.code == "config"
    assert str(broken) in raised.value.detail


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as raised:
        load_settings(missing, environ={})
    assert str(missing) in raised.value.detail


def test_config_file_named_by_environment_is_checked_too(tmp_path):
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError):
        load_settings(None, environ={"SESAME_CONFIG": str(missing)})


# --- known defects (see the report): the environment is not checked against the defaults' types ---
@pytest.mark.parametrize("raw,expected", [("False", False), ("TRUE", True), ("false", False)])
def test_environment_boolean_either_case(raw, expected):
    assert load_settings(None, environ={"SESAME_SERVER_DEMO": raw}).demo is expected


@pytest.mark.parametrize("raw", ["no", "off", "0"])
def test_environment_boolean_that_is_not_true_or_false_is_refused(raw):
    with pytest.raises(ConfigError):
        load_settings(None, environ={"SESAME_SERVER_DEMO": raw})


def test_environment_string_setting_keeps_digits_as_a_string():
    settings = load_settings(None, environ={"SESAME_SERVER_SECRET_KEY": "123456789"})
    assert settings["server"]["secret_key"] == "123456789"


def test_environment_number_setting_refuses_a_word():
    with pytest.raises(ConfigError):
        load_settings(None, environ={"SESAME_SESSION_LIFETIME_SECONDS": "8h"})
