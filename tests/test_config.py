"""Configuration layers (idp/app/config.py, DESIGN.md §7, §8.8):
built-in defaults < TOML file < SESAME_<SECTION>_<KEY> environment < overrides."""
from __future__ import annotations

from pathlib import Path

import pytest

from idp.app.config import load_settings
from idp.errors import ConfigError
from tests.conftest import write_node


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
    defaults = load_settings(None, environ={})["keys"]["password"]
    assert defaults["max_failures"] != 3 and defaults["lockout_seconds"] == 900
    settings = load_settings(None, {"keys": {"password": {"max_failures": 3}}}, environ={})
    assert settings["keys"]["password"] == {**defaults, "max_failures": 3}  # siblings kept
    assert settings.key_settings()["password"] == {**defaults, "max_failures": 3}


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


@pytest.mark.parametrize("name", ["SESAME_SERVER_BASE_ULR", "SESAME_SAML_NOPE", "SESAME_KEYS_PASWORD_LEVEL",
                                  "SESAME_KEYS_PASSWORD", "SESAME_KEYS_ENABLE"])
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


# --- the file and the environment name only settings that exist -------------------------------
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_environ(monkeypatch):
    """The process environment without SESAME_* variables (create_app reads it)."""
    import os

    for name in [n for n in os.environ if n.startswith("SESAME_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_a_typo_in_the_file_stops_the_start_naming_file_and_setting(tmp_path, clean_environ):
    from idp import create_app

    path = write_node(tmp_path, demo=True, extra="[session]\nlifetime_second = 60\n")
    with pytest.raises(ConfigError) as raised:
        create_app(str(path))
    assert str(path) in raised.value.detail
    assert "[session] lifetime_second" in raised.value.detail
    assert "lifetime_seconds" in raised.value.detail  # the likely meant one
    assert not (tmp_path / "data").exists()  # stopped before anything was made


@pytest.mark.parametrize("text,named", [
    ("[sesion]\nlifetime_seconds = 60\n", "[sesion]"),
    ("lifetime_seconds = 60\n[session]\n", "lifetime_seconds"),
    ("[keys]\nenable = [\"password\"]\n", "[keys] enable"),
    ("[keyz.password]\nlevel = 100\n", "[keyz]"),
    ("[levels]\nscales = [100, 200]\n", "[levels] scales"),
    ("[server.base_url]\nhost = \"x\"\n", "[server] base_url"),
    ("[keys]\npassword = 3\n", "[keys] password"),
    ("session = 3\n", "[session]"),
])
def test_unknown_sections_and_settings_of_the_file_are_refused(tmp_path, text, named):
    path = tmp_path / "typo.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    assert str(path) in raised.value.detail and named in raised.value.detail


def test_key_tables_are_checked_by_the_keys_not_twice(tmp_path, clean_environ):
    """[keys.<id>] is left to the key's typed settings: a table of a key not enabled loads,
    an unknown setting of an enabled key stops the start, said by the key."""
    from idp.app.services import Services

    assert load_settings(None, environ={})  # no file: nothing to check
    quiet = write_node(tmp_path / "quiet", demo=True, extra="[keys.someday]\nmodule = \"kept for later\"\n")
    assert load_settings(quiet, environ={})["keys"]["someday"] == {"module": "kept for later"}
    typo = write_node(tmp_path / "typo", demo=True, extra="[keys.password]\nmax_failure = 3\n")
    settings = load_settings(typo, environ={})
    with pytest.raises(ConfigError) as raised:
        Services.build(settings)
    assert "[keys.password]" in raised.value.detail and "max_failure" in raised.value.detail


@pytest.mark.parametrize("name", ["production.example.toml", "demo.toml"])
def test_the_shipped_configurations_name_only_known_settings(name):
    settings = load_settings(ROOT / "conf" / name, environ={})
    assert settings.demo is (name == "demo.toml")


# --- SESAME_KEYS_<ID>_<SETTING> ----------------------------------------------------------
def test_environment_sets_a_key_setting_for_the_running_instance(tmp_path, clean_environ):
    from idp import create_app

    path = write_node(tmp_path, demo=True)
    clean_environ.setenv("SESAME_KEYS_PASSWORD_MAX_FAILURES", "3")
    clean_environ.setenv("SESAME_KEYS_PASSWORD_LOCKOUT_SECONDS", "60")
    app = create_app(str(path))
    services = app.extensions["sesame"]
    assert services.adapters["password"].settings.max_failures == 3
    assert services.adapters["password"].settings.lockout_seconds == 60
    services.database.dispose()


def test_environment_key_ids_with_underscores_match_the_longest_table(tmp_path):
    path = tmp_path / "tables.toml"
    path.write_text("[keys.standin]\nlevel = 100\n\n[keys.standin_code]\nlevel = 300\n", encoding="utf-8")
    settings = load_settings(path, environ={"SESAME_KEYS_STANDIN_CODE_LEVEL": "400",
                                            "SESAME_KEYS_STANDIN_LEVELS": "[100, 200]",
                                            "SESAME_KEYS_STANDIN_CODE_CONTEXT_CLASS": "urn:x:code"})
    assert settings["keys"]["standin_code"] == {"level": 400, "context_class": "urn:x:code"}
    assert settings["keys"]["standin"] == {"level": 100, "levels": [100, 200]}


def test_environment_fills_the_table_of_a_key_enabled_without_one(tmp_path):
    """A key enabled (here by the environment itself) gets its settings from the environment,
    typed by the TOML literal rules, then checked by the key's own settings at start."""
    from adapters import ADAPTERS
    from idp.app.services import Services
    from tests.standin_keys import StandinCode

    environ = {"SESAME_KEYS_ENABLED": '["password", "standin_code"]',
               "SESAME_KEYS_STANDIN_CODE_CODE_SECRET": "s3cret_with_underscores",
               "SESAME_KEYS_STANDIN_CODE_MAX_CODE_ATTEMPTS": "7"}
    settings = load_settings(write_node(tmp_path, demo=True), environ=environ)
    services = Services.build(settings, key_types={**ADAPTERS, "standin_code": StandinCode})
    assert services.adapters["standin_code"].settings.code_secret == "s3cret_with_underscores"
    assert services.adapters["standin_code"].settings.max_code_attempts == 7
    services.database.dispose()


def test_environment_key_setting_of_the_wrong_type_or_unknown_is_refused(tmp_path):
    from idp.app.services import Services

    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={"SESAME_KEYS_PASSWORD_MAX_FAILURES": "three"})
    assert "SESAME_KEYS_PASSWORD_MAX_FAILURES" in raised.value.detail
    settings = load_settings(write_node(tmp_path, demo=True), environ={"SESAME_KEYS_PASSWORD_MAX_FAILUREZ": "3"})
    with pytest.raises(ConfigError) as raised:
        Services.build(settings)
    assert "[keys.password]" in raised.value.detail and "max_failurez" in raised.value.detail


# --- secrets: configured, generated in demo mode only, private on disk ---------------------
def test_pairwise_secret_can_be_configured(tmp_path, clean_environ):
    from idp import create_app

    path = write_node(tmp_path, demo=True)
    path.write_text(path.read_text().replace("demo = true", 'demo = true\npairwise_secret = "from-the-file"'))
    services = create_app(str(path)).extensions["sesame"]
    assert services.pairwise_secret == b"from-the-file"
    assert not (tmp_path / "data" / "pairwise_secret").exists()
    services.database.dispose()
    clean_environ.setenv("SESAME_SERVER_PAIRWISE_SECRET", "from-the-environment")
    services = create_app(str(path)).extensions["sesame"]
    assert services.pairwise_secret == b"from-the-environment"
    services.database.dispose()


def copied_secret(data: Path, name: str) -> None:
    """A secret file as an operator copies it into a node's data folder."""
    data.mkdir(mode=0o700, exist_ok=True)
    (data / name).write_text("copied-" + name * 4)
    (data / name).chmod(0o600)


def test_outside_demo_mode_missing_secrets_stop_the_start(tmp_path, clean_environ):
    """Outside demo mode a node never makes up a secret or a key of its own."""
    from idp import create_app

    path = write_node(tmp_path, demo=False)
    data = tmp_path / "data"
    steps = (("secret_key", lambda: None, []),
             ("pairwise_secret", lambda: clean_environ.setenv("SESAME_SERVER_SECRET_KEY", "k" * 40), []),
             ("signing.key", lambda: copied_secret(data, "pairwise_secret"), ["pairwise_secret"]))
    for missing, provide_the_one_before, present in steps:
        provide_the_one_before()
        with pytest.raises(ConfigError) as raised:
            create_app(str(path))
        assert missing in raised.value.detail and "sesame init-secrets" in raised.value.detail
        assert sorted(p.name for p in data.iterdir()) == present  # nothing generated, no database made


def test_outside_demo_mode_configured_key_files_must_exist(tmp_path):
    from idp.app.services import Services

    for signing, named in (('key_file = "/nonexistent/s.key"\ncert_file = "/nonexistent/s.crt"', "/nonexistent/s"),
                           ('key_file = "/nonexistent/s.key"', "cert_file")):
        path = write_node(tmp_path, demo=False, extra=f"[signing]\n{signing}\n")
        copied_secret(tmp_path / "data", "pairwise_secret")
        with pytest.raises(ConfigError) as raised:
            Services.build(load_settings(path, environ={"SESAME_SERVER_SECRET_KEY": "k" * 40}))
        assert named in raised.value.detail


def test_demo_mode_generates_them_once_and_everything_in_the_data_folder_is_private(tmp_path, clean_environ):
    """Data folder 0700, every file Sésame makes in it 0600 (SQLite's -wal and -shm
    included), whatever the umask."""
    import os
    import stat

    from idp import create_app

    path = write_node(tmp_path, demo=True)
    previous = os.umask(0o022)  # a permissive umask, as on many servers
    try:
        services = create_app(str(path)).extensions["sesame"]
        services.people.create(surname="Private", given_name="Data", username="private", password="whatever-1")
        data = tmp_path / "data"
        files = {p.relative_to(data).as_posix(): stat.S_IMODE(p.stat().st_mode)
                 for p in data.rglob("*") if p.is_file()}
        folders = {p.relative_to(data).as_posix(): stat.S_IMODE(p.stat().st_mode)
                   for p in [data, *data.rglob("*")] if p.is_dir()}
        assert {"sesame.db", "sesame.db-wal", "sesame.db-shm", "secret_key", "pairwise_secret",
                "keys/signing.key", "keys/signing.crt"} <= set(files)
        assert files == {name: 0o600 for name in files}
        assert folders == {".": 0o700, "keys": 0o700}
        first = services.secret_key, services.pairwise_secret, services.signer.certificate_pem
        services.database.dispose()
        again = create_app(str(path)).extensions["sesame"]
        assert (again.secret_key, again.pairwise_secret, again.signer.certificate_pem) == first  # kept
        again.database.dispose()
    finally:
        os.umask(previous)
