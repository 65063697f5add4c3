"""The ``sesame`` command (idp/app/cli.py): portals and users, run through ``idp.app.cli.main``
against a TOML configuration in a temporary folder, and once as the installed
console script in a real subprocess.

Refusals are asserted by exit code (2: refused, 1: not found) and by a line on
stderr starting with ``refused:`` / ``configuration error``, never by wording.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from sqlalchemy import func, select

from idp import create_app
from idp.app.cli import main
from idp.clock import FrozenClock
from idp.app.config import load_settings
from idp.app.demo import DEMO_CITIZENS, idp_metadata_xml, make_nrn
from idp.persistence.models import AuditEvent, Credential, Person
from idp.app.services import Services
from keys.generate import ensure_key_pair
from sp_examples.portal import PortalSpec, sp_config, sp_metadata
from tests.saml_sp import TestPortal, autopost_fields, follow, login_with_password, send

ROOT = Path(__file__).resolve().parent.parent
SESAME = ROOT / ".venv" / "bin" / "sesame"
BASE_URL = "http://idp.test"

PORTAL = PortalSpec(slug="cliportal", title="CLI Portal", base_url="http://localhost:18090",
                    binding=BINDING_HTTP_REDIRECT, sign_requests=False, want_assertions_signed=True)
PUBLIC_HTTP = PortalSpec(slug="public", title="Public over http", base_url="http://portal.example.be",
                         binding=BINDING_HTTP_POST)


# --- fixtures: keys and metadata made once for the module ---------------------------
@dataclass(frozen=True)
class Keys:
    idp_key: Path
    idp_cert: Path
    sp_key: Path
    sp_cert: Path


def write_config(directory: Path, keys: Keys, *, enabled: tuple[str, ...] = ("password",)) -> Path:
    """A TOML configuration: data folder, SQLite file, demo mode, a given signing key (no key generation)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sesame.toml"
    path.write_text(f"""
[server]
base_url = "{BASE_URL}"
data_dir = "{directory / 'data'}"
demo = true

[database]
url = "sqlite:///{directory / 'sesame.db'}"

[signing]
key_file = "{keys.idp_key}"
cert_file = "{keys.idp_cert}"

[keys]
enabled = {json.dumps(list(enabled))}

[log]
format = "text"
level = "WARNING"
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    directory = tmp_path_factory.mktemp("cli-keys")
    idp_key, idp_cert = ensure_key_pair(directory=directory / "idp", common_name="idp.test", key_size=2048)
    sp_key, sp_cert = ensure_key_pair(directory=directory / "sp", common_name="cliportal", key_size=2048)
    return Keys(idp_key, idp_cert, sp_key, sp_cert)


@pytest.fixture(scope="module")
def metadata(tmp_path_factory, keys) -> dict[str, object]:
    """Portal metadata files made by pysaml2, good and bad, and the good portal's SP config."""
    directory = tmp_path_factory.mktemp("cli-metadata")
    services = Services.build(load_settings(write_config(directory / "idp", keys), environ={}))
    idp_xml = idp_metadata_xml(services)
    services.database.dispose()

    def make(spec: PortalSpec):
        config = sp_config(spec, key_file=keys.sp_key, cert_file=keys.sp_cert, idp_metadata=idp_xml)
        return config, sp_metadata(config)

    config, good = make(PORTAL)
    _, public_http = make(PUBLIC_HTTP)
    files = {"good": good, "public_http": public_http,
             "doctype": b'<!DOCTYPE md [<!ENTITY x "y">]>\n' + good.split(b"?>", 1)[-1].lstrip(),
             "garbage": b"this is not metadata \x00\xff at all"}
    paths = {}
    for name, data in files.items():
        paths[name] = directory / f"{name}.xml"
        paths[name].write_bytes(data)
    return {"paths": paths, "config": config, "idp_xml": idp_xml}


@pytest.fixture
def cfg(tmp_path, keys) -> Path:
    return write_config(tmp_path / "conf", keys)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def sesame(cfg, capsys):
    """``sesame --config <cfg> ...`` in this process."""

    def run(*argv: str, config: Path | None = None) -> Run:
        capsys.readouterr()
        code = main(["--config", str(config or cfg), *argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def refused(run: Run) -> bool:
    return run.code == 2 and any(line.startswith("refused:") for line in run.err_lines())


def registered(sesame) -> list[str]:
    listing = sesame("portal", "list")
    assert listing.code == 0
    return [line.split("\t")[0] for line in listing.out.splitlines() if line.strip()]


# --- the console script -----------------------------------------------------------
def test_console_script_is_installed(sesame, cfg, metadata):
    assert sesame("portal", "add", str(metadata["paths"]["good"])).code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESAME_")}
    helped = subprocess.run([str(SESAME), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0
    assert "portal" in helped.stdout and "user" in helped.stdout
    listed = subprocess.run([str(SESAME), "--config", str(cfg), "portal", "list"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[0] == PORTAL.entity_id


# --- portals ----------------------------------------------------------------------
def test_portal_add_list_show(sesame, metadata):
    added = sesame("portal", "add", str(metadata["paths"]["good"]), "--attributes", "surname,givenName",
                   "--accepted-keys", "password", "--nameid-format", "transient", "--name", "Portail CLI")
    assert added.code == 0, added.err
    assert PORTAL.entity_id in added.out
    listing = sesame("portal", "list")
    assert listing.out.splitlines()[0].split("\t")[:3] == [PORTAL.entity_id, "Portail CLI", "password"]

    shown = sesame("portal", "show", PORTAL.entity_id)
    assert shown.code == 0
    data = json.loads(shown.out)
    assert data["entity_id"] == PORTAL.entity_id
    assert data["policy"]["attributes"] == ["surname", "givenName"]
    assert data["policy"]["accepted_keys"] == ["password"]
    assert data["policy"]["nameid_format"] == "transient"
    assert data["policy"]["min_level"] == 100
    assert data["assertion_consumer_services"] == [f"{PORTAL.base_url}/acs"]
    assert data["source"] == str(metadata["paths"]["good"])


def test_portal_show_unknown_is_not_found(sesame):
    assert sesame("portal", "show", "https://nobody.example.be/metadata").code == 1


@pytest.mark.parametrize("bad", ["doctype", "public_http", "garbage", "missing"])
def test_portal_add_refuses_bad_metadata(sesame, metadata, cfg, bad):
    path = metadata["paths"].get(bad, Path("/nonexistent/metadata.xml"))
    run = sesame("portal", "add", str(path))
    assert refused(run), run
    assert registered(sesame) == []
    services = Services.build(load_settings(cfg, environ={}), migrate=False)
    with services.database.session() as s:
        events = [(e.event, e.result) for e in s.scalars(select(AuditEvent))]
    services.database.dispose()
    assert ("portal.refused", "bad_metadata") in events
    assert not [e for e in events if e[0] == "portal.registered"]


def test_duplicate_add_needs_replace(sesame, metadata):
    good = str(metadata["paths"]["good"])
    assert sesame("portal", "add", good, "--attributes", "surname,givenName").code == 0
    again = sesame("portal", "add", good, "--attributes", "surname")
    assert refused(again)
    assert json.loads(sesame("portal", "show", PORTAL.entity_id).out)["policy"]["attributes"] == [
        "surname", "givenName"]
    replaced = sesame("portal", "add", good, "--attributes", "surname", "--replace")
    assert replaced.code == 0, replaced.err
    assert json.loads(sesame("portal", "show", PORTAL.entity_id).out)["policy"]["attributes"] == ["surname"]
    assert registered(sesame) == [PORTAL.entity_id]


@pytest.mark.parametrize("option,value", [("--attributes", "surname,shoeSize"),
                                          ("--accepted-keys", "password,telepathy"),
                                          ("--min-level", "150")])
def test_portal_add_refuses_a_bad_policy(sesame, metadata, option, value):
    run = sesame("portal", "add", str(metadata["paths"]["good"]), option, value)
    assert refused(run), run
    assert registered(sesame) == []


def test_portal_remove(sesame, metadata):
    assert sesame("portal", "add", str(metadata["paths"]["good"])).code == 0
    assert sesame("portal", "remove", PORTAL.entity_id).code == 0
    assert registered(sesame) == []
    assert sesame("portal", "show", PORTAL.entity_id).code == 1
    assert sesame("portal", "remove", PORTAL.entity_id).code == 1


# --- users ------------------------------------------------------------------------
class _RegisteredPortal(TestPortal):
    """The portal's pysaml2 client, registered by the CLI rather than by the test."""

    def __init__(self, services, spec, config) -> None:
        self.spec, self.services, self.config = spec, services, config
        self.client = Saml2Client(config)
        self.outstanding = {}


def test_user_add_then_login_with_the_password_key(sesame, metadata, cfg):
    nrn = make_nrn(dt.date(1979, 5, 8), 17)
    assert sesame("portal", "add", str(metadata["paths"]["good"]), "--attributes",
                  "surname,givenName,egovNRN,mail,birthDate").code == 0
    added = sesame("user", "add", "anne.martin", "--given-name", "Anne", "--surname", "Martin", "--nrn", nrn,
                   "--mail", "anne.martin@example.be", "--birth-date", "1979-05-08", "--lang", "nl",
                   "--password", "Anne-Pass-2026!")
    assert added.code == 0, added.err

    services = Services.build(load_settings(cfg, environ={}), clock=FrozenClock(), migrate=False)
    app = create_app(services=services)
    portal = _RegisteredPortal(services, PORTAL, metadata["config"])
    browser = app.test_client()
    sent = portal.request()
    page = follow(browser, send(browser, sent))
    assert page.status_code == 200
    done = login_with_password(browser, page, username="anne.martin", password="Anne-Pass-2026!")
    _, fields = autopost_fields(done)
    response = portal.parse(fields["SAMLResponse"])
    assert response.in_response_to == sent.request_id
    assert response.get_identity() == {"surname": ["Martin"], "givenName": ["Anne"], "egovNRN": [nrn],
                                       "mail": ["anne.martin@example.be"], "birthDate": ["1979-05-08"]}
    services.database.dispose()


def _people(cfg: Path) -> int:
    services = Services.build(load_settings(cfg, environ={}), migrate=False)
    try:
        with services.database.session() as s:
            return s.scalar(select(func.count()).select_from(Person))
    finally:
        services.database.dispose()


def _credentials(cfg: Path) -> int:
    services = Services.build(load_settings(cfg, environ={}), migrate=False)
    try:
        with services.database.session() as s:
            return s.scalar(select(func.count()).select_from(Credential))
    finally:
        services.database.dispose()


def test_user_add_refuses_a_wrong_national_number(sesame, cfg):
    good = make_nrn(dt.date(1985, 3, 14), 123)
    wrong = good[:9] + f"{(int(good[9:]) + 1) % 100:02d}"
    run = sesame("user", "add", "bad.nrn", "--given-name", "Bad", "--surname", "Number", "--nrn", wrong,
                 "--password", "Twelve-Chars-Or-More-1")
    assert refused(run), run
    assert _people(cfg) == 0 and _credentials(cfg) == 0


def test_user_add_accepts_a_post_2000_national_number(sesame, cfg):
    nrn = make_nrn(dt.date(2003, 1, 9), 42)  # check digits computed with the 2 prefix
    assert sesame("user", "add", "young", "--given-name", "Young", "--surname", "Person", "--nrn", nrn,
                  "--password", "Twelve-Chars-Or-More-1").code == 0
    assert _people(cfg) == 1


def test_user_add_duplicate_username_writes_nothing(sesame, cfg):
    args = ("--given-name", "Twin", "--surname", "Twin", "--password", "Twelve-Chars-Or-More-1")
    assert sesame("user", "add", "twin", *args).code == 0
    again = sesame("user", "add", "twin", *args)
    assert refused(again), again
    assert _people(cfg) == 1 and _credentials(cfg) == 1  # no person without a key left behind


# --- configuration errors ---------------------------------------------------------
def test_unknown_key_in_configuration_fails_at_start(sesame, tmp_path, keys):
    config = write_config(tmp_path / "badkeys", keys, enabled=("password", "telepathy"))
    run = sesame("portal", "list", config=config)
    assert run.code == 2
    assert any(line.startswith("configuration error") for line in run.err_lines()), run.err


def test_unreadable_configuration_file(sesame, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nbase_url = ", encoding="utf-8")
    run = sesame("portal", "list", config=broken)
    assert run.code == 2
    assert any(line.startswith("configuration error") for line in run.err_lines())
    assert sesame("portal", "list", config=tmp_path / "absent.toml").code == 2


def test_user_add_refuses_a_bad_birth_date(sesame, cfg):
    run = sesame("user", "add", "dated", "--given-name", "Bad", "--surname", "Date", "--birth-date", "14/03/1985",
                 "--password", "Twelve-Chars-Or-More-1")
    assert refused(run), run
    assert _people(cfg) == 0


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "conf" / "portals").glob("*.toml")),
                         ids=lambda p: p.name)
def test_example_policies_in_conf_are_valid(path):
    import tomllib

    from metadata.policy import policy_from_mapping

    with path.open("rb") as fh:
        policy = policy_from_mapping(tomllib.load(fh), known_keys=["password"], levels=[100, 200, 300, 400, 500])
    assert policy.attributes and "surname" in policy.attributes


def test_the_demo_reads_the_demo_configuration_of_this_checkout():
    """``sesame demo`` without --config reads conf/demo.toml (README's demo command)."""
    from idp.app.cli import demo_config
    from idp.app.config import load_settings

    assert demo_config() == ROOT / "conf" / "demo.toml"
    settings = load_settings(str(demo_config()), environ={})
    assert settings.demo and settings.base_url == "http://localhost:8080"


# --- production nodes: secrets made once, the demo refused --------------------------
def write_production_config(directory: Path) -> Path:
    """A node outside demo mode: nothing configured but its data folder (secrets, key, SQLite)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sesame.toml"
    path.write_text(f"""
[server]
base_url = "https://idp.example.be"
data_dir = "{directory / 'data'}"
demo = false

[log]
format = "text"
level = "WARNING"
""", encoding="utf-8")
    return path


def test_a_production_node_needs_init_secrets_once(sesame, tmp_path):
    import stat

    config = write_production_config(tmp_path / "node")
    data = tmp_path / "node" / "data"
    before = sesame("portal", "list", config=config)
    assert before.code == 2 and any(line.startswith("configuration error") and "sesame init-secrets" in line
                                    for line in before.err_lines()), before.err
    assert not (data / "sesame.db").exists()  # stopped before the database

    made = sesame("init-secrets", config=config)
    assert made.code == 0, made.err
    created = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    assert created == {"secret_key", "pairwise_secret", "seal_key", "keys/signing.key", "keys/signing.crt"}
    assert {stat.S_IMODE((data / name).stat().st_mode) for name in created} == {0o600}
    assert stat.S_IMODE(data.stat().st_mode) == stat.S_IMODE((data / "keys").stat().st_mode) == 0o700
    contents = {name: (data / name).read_bytes() for name in created}

    again = sesame("init-secrets", config=config)  # never overwrites
    assert again.code == 0 and "created" not in again.out
    assert {name: (data / name).read_bytes() for name in created} == contents
    assert sesame("portal", "list", config=config).code == 0


def test_init_secrets_leaves_configured_secrets_alone(sesame, tmp_path, keys):
    config = write_production_config(tmp_path / "node")
    config.write_text(config.read_text().replace("demo = false", 'demo = false\nsecret_key = "configured-secret"')
                      + f'\n[signing]\nkey_file = "{keys.idp_key}"\ncert_file = "{keys.idp_cert}"\n')
    made = sesame("init-secrets", config=config)
    assert made.code == 0, made.err
    data = tmp_path / "node" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["pairwise_secret", "seal_key"]


def test_demo_refuses_a_configuration_outside_demo_mode(sesame, tmp_path):
    """``sesame demo`` creates citizens with the published demo password: never on a real instance."""
    config = write_production_config(tmp_path / "node")
    assert sesame("init-secrets", config=config).code == 0
    run = sesame("demo", config=config)
    assert run.code == 2
    assert len(run.err_lines()) == 1 and run.err_lines()[0].startswith("refused:")
    assert not (tmp_path / "node" / "data" / "sesame.db").exists()  # no citizen, no database


# --- new passwords and usernames (idp/people/password_policy.py, idp/people/usernames.py) ----
def _usernames(cfg: Path) -> list[str]:
    services = Services.build(load_settings(cfg, environ={}), migrate=False)
    try:
        with services.database.session() as s:
            return list(s.scalars(select(Credential.username).order_by(Credential.id)))
    finally:
        services.database.dispose()


@pytest.mark.parametrize("password,problem", [
    ("a", "password_too_short"),
    ("Short-1!", "password_too_short"),
    ("Password1234", "password_common"),
    ("AZERTYUIOP123", "password_common"),
    ("2026-Sunshine!!", "password_common"),  # a common password with digits and signs around it
    ("Anne.Martin-2026!", "password_contains_username"),
    ("x" * 1025, "password_too_long"),  # the login form reads 1024 characters: it could never be typed
])
def test_user_add_refuses_a_weak_password_and_writes_nothing(sesame, cfg, password, problem):
    run = sesame("user", "add", "anne.martin", "--given-name", "Anne", "--surname", "Martin", "--password", password)
    assert refused(run), run
    assert len(run.err_lines()) == 1 and problem in run.err  # one line, with the reason's code
    if len(password) > 1:
        assert password not in run.err and password not in run.out
    assert _people(cfg) == 0 and _credentials(cfg) == 0


def test_user_add_takes_the_password_from_the_environment_under_the_same_policy(sesame, cfg, monkeypatch):
    monkeypatch.setenv("SESAME_NEW_PASSWORD", "letmein")
    assert refused(sesame("user", "add", "env.user", "--given-name", "Env", "--surname", "User"))
    assert _people(cfg) == 0


def test_user_add_accepts_the_demo_password(sesame, cfg):
    from idp.app.demo import DEMO_PASSWORD

    for username, given, surname, *_ in DEMO_CITIZENS:
        assert sesame("user", "add", username, "--given-name", given, "--surname", surname,
                      "--password", DEMO_PASSWORD).code == 0
    assert _credentials(cfg) == len(DEMO_CITIZENS)


def test_user_add_minimum_length_is_configurable(sesame, cfg):
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write("\n[keys.password]\nmin_password_length = 20\n")
    run = sesame("user", "add", "long.one", "--given-name", "Long", "--surname", "One", "--password", "Fourteen-Chars")
    assert refused(run) and "password_too_short" in run.err
    assert sesame("user", "add", "long.one", "--given-name", "Long", "--surname", "One",
                  "--password", "Twenty-Characters-0k").code == 0


def test_user_add_stores_the_normal_form_and_refuses_its_variants(sesame, cfg):
    args = ("--given-name", "Marie", "--surname", "Dupont", "--password", "Twelve-Chars-Or-More-1")
    assert sesame("user", "add", "Marie.Dupont", *args).code == 0
    for variant in ("marie.dupont", "ｍarie.dupont", "ＭＡＲＩＥ.ＤＵＰＯＮＴ", " marie.dupont"):
        again = sesame("user", "add", variant, *args)
        assert refused(again), (variant, again)
    assert _usernames(cfg) == ["marie.dupont"] and _people(cfg) == 1


@pytest.mark.parametrize("username", ["marie\tdupont", "ﬃ" * 171, "\u202emarie", "   "])
def test_user_add_refuses_a_username_that_cannot_be_one(sesame, cfg, username):
    run = sesame("user", "add", username, "--given-name", "Marie", "--surname", "Dupont",
                 "--password", "Twelve-Chars-Or-More-1")
    assert refused(run) and len(run.err_lines()) == 1, run
    assert _people(cfg) == 0


def test_without_a_configuration_the_command_says_which_instance_it_uses(tmp_path, monkeypatch, capsys, cfg):
    """No --config nor $SESAME_CONFIG: the built-in defaults' instance (data folder var/
    of the working directory), said on stderr with how to reach the demo's, not silently."""
    from idp.app.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESAME_CONFIG", raising=False)
    monkeypatch.setenv("SESAME_SERVER_DEMO", "true")  # the defaults' instance may make up its keys
    assert main(["portal", "list"]) == 0
    err = capsys.readouterr().err
    assert "no --config nor $SESAME_CONFIG" in err and str(tmp_path / "var") in err
    assert main(["--config", str(cfg), "portal", "list"]) == 0
    assert "no --config" not in capsys.readouterr().err  # chosen: nothing to say
    monkeypatch.setenv("SESAME_CONFIG", str(cfg))
    assert main(["portal", "list"]) == 0
    assert "no --config" not in capsys.readouterr().err  # chosen: nothing to say
