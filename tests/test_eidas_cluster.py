"""The European key on two Sésame nodes sharing PostgreSQL and Redis: the
request we wait for and the assertion IDs already accepted live in the shared
state store, so an answer is taken once whichever node it reaches, even when
the same response arrives at both nodes at once."""
from __future__ import annotations

import secrets

import pytest

from adapters.eidas.key import PENDING, first_time
from adapters.eidas.profile import NodeAnswer
from idp import create_app
from idp.app.services import Services
from sandbox.eidas import state
from tests.eidas_fixtures import KEY_TYPES, eidas_keys, make_world, node  # noqa: F401
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import autopost_fields, error_code
from tests.services import create_postgres_database, drop_postgres_database


@pytest.fixture
def cluster(tmp_path, clock, node, eidas_keys, postgres_server, redis_url):
    """Node A (with the portal) and node B: one database, one Redis, one data folder's secrets and keys."""
    database = create_postgres_database()
    a = make_world(tmp_path, clock, node, eidas_keys, store=redis_url, database=database)
    services_b = Services.build(a.services.settings, clock=clock, key_types=KEY_TYPES)
    yield a, create_app(services=services_b), services_b
    for services in (a.services, services_b):
        services.database.engine.dispose()
    drop_postgres_database(database)


def test_a_login_sent_from_one_node_is_answered_at_the_other(cluster):
    a, app_b, _ = cluster
    sent = a.at_node(a.to_node())
    done = same_browser(app_b, a.browser).post("/login/eidas/return", data=sent.fields)
    response = a.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.ava["givenName"] == ["Anna"]


def test_the_same_response_at_both_nodes_at_once_wins_once(cluster):
    a, app_b, _ = cluster
    sent = a.at_node(a.to_node())
    browsers = [same_browser(app, a.browser) for app in (a.app, app_b) * 3]
    answers = in_parallel(len(browsers), lambda i: browsers[i].post("/login/eidas/return", data=sent.fields))
    won = [r for r in answers if r.status_code == 200 and 'id="autopost"' in r.get_data(as_text=True)]
    assert len(won) == 1
    assert sorted(error_code(r) for r in answers if r not in won) == ["bad_return"] * 5
    assert len(a.audit("login.success")) == 1  # one database: every node's audit rows


def test_the_keys_single_use_records_hold_across_nodes_in_parallel(cluster):
    a, _, services_b = cluster
    stores = [a.services.store, services_b.store]
    now = a.services.clock.now()
    answer = NodeAnswer(assertion_id="_" + secrets.token_hex(8), not_on_or_after=now + 300,
                        issuer=f"{state(a.node).entity_id}", loa="low", identifier="DE/BE/X")
    firsts = in_parallel(8, lambda i: first_time(stores[i % 2], answer, now=now, skew=60))
    assert sorted(firsts) == [False] * 7 + [True]
    request_id = "_" + secrets.token_hex(8)
    stores[0].put(PENDING + request_id, {"journey": "j"}, ttl=60)
    taken = in_parallel(8, lambda i: stores[i % 2].pop(PENDING + request_id))
    assert [t for t in taken if t is not None] == [{"journey": "j"}]
