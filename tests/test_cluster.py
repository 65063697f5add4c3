"""Two Sésame processes behind a load balancer, sharing PostgreSQL and Redis,
behave as one (DESIGN.md §5): a session started on one answers on the other, a
request ID seen by one is refused by the other, a logout on one ends the session
for both.

Each node has its own configuration file and data folder, outside demo mode, as
in production: they share only what an operator shares, the secrets and the
signing key made once by ``sesame init-secrets`` and copied into both folders."""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from idp import create_app
from idp.app.cli import main
from idp.app.config import load_settings
from idp.app.demo import create_citizens
from idp.app.services import Services
from idp.errors import ConfigError
from tests.saml_sp import FSE, MON_ESPACE, TestPortal, autopost_fields, follow, login_with_password, send
from tests.conftest import write_node
from tests.services import create_postgres_database, drop_postgres_database

SHARED = ("secret_key", "pairwise_secret", "seal_key", "keys")  # what `sesame init-secrets` made, copied to every node


def node_config(folder: Path, *, database: str, store: str, prefix: str) -> Path:
    """One node's configuration file (not demo mode), its data folder beside it."""
    return write_node(folder, demo=False, extra=f"""
[database]
url = "{database}"

[store]
url = "{store}"
prefix = "{prefix}"
""")


def copy_shared(source: Path, target: Path) -> None:
    """What the operator does for a new node: the data folder (0700) and the shared files, modes kept."""
    target.mkdir(mode=0o700)
    for name in SHARED:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name)
        else:
            shutil.copy2(source / name, target / name)


@pytest.fixture
def cluster(tmp_path, clock, postgres_server, redis_url):
    """Two apps (two ``Services``, two engines, two Redis clients, two data folders) on
    one database and one Redis, sharing the secrets an operator shares between nodes."""
    database = create_postgres_database()
    prefix = f"cluster-{secrets.token_hex(4)}:"
    configs = [node_config(tmp_path / name, database=database, store=redis_url, prefix=prefix) for name in "ab"]
    assert main(["--config", str(configs[0]), "init-secrets"]) == 0  # once, on the first node
    copy_shared(tmp_path / "a" / "data", tmp_path / "b" / "data")
    nodes = []
    for config in configs:
        services = Services.build(load_settings(config, environ={}), clock=clock)
        nodes.append((create_app(services=services), services))
    create_citizens(nodes[0][1])
    monespace = TestPortal(nodes[0][1], MON_ESPACE, tmp_path / "sp")
    fse = TestPortal(nodes[0][1], FSE, tmp_path / "sp")
    yield nodes, monespace, fse
    for _, services in nodes:
        services.database.engine.dispose()
    drop_postgres_database(database)


def test_session_started_on_one_node_answers_on_the_other(cluster):
    (app_a, _), (app_b, _) = cluster[0]
    monespace, fse = cluster[1], cluster[2]
    browser_a = app_a.test_client()
    page = follow(browser_a, send(browser_a, monespace.request()))
    monespace.parse(autopost_fields(login_with_password(browser_a, page, username="marie.dupont"))[1]["SAMLResponse"])
    # the load balancer sends the next request to node B, with the same cookie
    browser_b = app_b.test_client()
    cookie = browser_a.get_cookie("sesame")
    browser_b.set_cookie("sesame", cookie.value, domain=cookie.domain)
    action, fields = autopost_fields(send(browser_b, fse.request()))
    assert action == "http://localhost:18082/acs"
    assert fse.parse(fields["SAMLResponse"]).get_identity()["surname"] == ["Dupont"]


def test_request_id_seen_by_one_node_is_refused_by_the_other(cluster):
    (app_a, _), (app_b, _) = cluster[0]
    sent = cluster[2].request()
    assert send(app_a.test_client(), sent).status_code == 303
    replay = send(app_b.test_client(), sent)
    assert replay.status_code == 400 and 'data-code="replayed_request"' in replay.get_data(as_text=True)


def test_portal_registered_through_one_node_is_known_to_the_other(cluster, tmp_path):
    from dataclasses import replace

    (_, services_a), (app_b, _) = cluster[0]
    spec = replace(FSE, slug="fse-bis", base_url="http://localhost:18089")
    late = TestPortal(services_a, spec, tmp_path / "sp")  # registered through node A's registry
    browser = app_b.test_client()
    page = follow(browser, send(browser, late.request()))
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)


def test_both_nodes_sign_with_the_shared_key_and_give_the_same_persistent_nameid(cluster):
    (app_a, services_a), (app_b, services_b) = cluster[0]
    monespace = cluster[1]
    nameids = []
    for app in (app_a, app_b):  # a fresh browser on each node: a login of its own, no SSO
        browser = app.test_client()
        page = follow(browser, send(browser, monespace.request()))
        done = login_with_password(browser, page, username="marie.dupont")
        # the portal knows node A's metadata only: node B's response verifies with the shared key
        nameids.append(monespace.parse(autopost_fields(done)[1]["SAMLResponse"]).name_id.text)
    assert nameids[0] == nameids[1]
    assert services_a.signer.certificate_pem == services_b.signer.certificate_pem


def test_a_node_without_the_shared_secrets_refuses_to_start(cluster, tmp_path, redis_url):
    """A node never makes up its own secrets outside demo mode: it would sign with
    another key and give other NameIDs than its peers."""
    (_, services_a), _ = cluster[0]
    config = node_config(tmp_path / "c", database=services_a.settings.database_url, store=redis_url,
                         prefix=services_a.settings["store"]["prefix"])
    with pytest.raises(ConfigError) as raised:
        Services.build(load_settings(config, environ={}))
    assert "sesame init-secrets" in raised.value.detail
    assert sorted(p.name for p in (tmp_path / "c" / "data").iterdir()) == []
