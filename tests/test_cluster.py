"""Two Sésame processes behind a load balancer, sharing PostgreSQL and Redis,
behave as one (DESIGN.md §5): a session started on one answers on the other, a
request ID seen by one is refused by the other, a logout on one ends the session
for both."""
from __future__ import annotations

import secrets

import pytest

from idp import create_app
from idp.app.demo import create_citizens
from idp.app.services import Services
from tests.conftest import idp_settings
from tests.saml_sp import FSE, MON_ESPACE, TestPortal, autopost_fields, follow, login_with_password, send
from tests.services import create_postgres_database, drop_postgres_database


@pytest.fixture
def cluster(tmp_path, clock, postgres_server, redis_url):
    """Two apps (two ``Services``, two engines, two Redis clients) on one database
    and one Redis, sharing the secrets an operator shares between nodes."""
    database = create_postgres_database()
    secret = secrets.token_urlsafe(32)
    nodes = []
    for _ in range(2):
        settings = idp_settings(tmp_path, database=database, store=redis_url, server={"secret_key": secret})
        settings["store"]["prefix"] = f"cluster-{secret[:8]}:"
        services = Services.build(settings, clock=clock)
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
