"""The European key in a real browser (Debian's chromium through Playwright):
Mon Espace, asking for level 300, → Sésame's key choice → "Authentification
européenne" → the country → the eIDAS sandbox node (its own site, 127.0.0.1,
a real SAML identity provider in a thread) → a person, level substantial →
back at Sésame by a cross-site POST (parked, resumed by a GET: SameSite=Lax)
→ back at the portal with the names and birth date.  The node registered
Sésame from its signed SP metadata, as a real node would."""
from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.eidas.metadata import sp_metadata
from idp.app.demo import register_portal, serve_in_thread
from sandbox.eidas import create_sandbox_app, sp_from_metadata, state
from tests.browsers import record_urls
from tests.eidas_fixtures import KEY_TYPES
from tests.live import HOST, free_ports, live_demo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live-eidas")
    idp_port, node_port = free_ports(2)
    node_url = f"http://{HOST}:{node_port}"
    node = create_sandbox_app(node_url)
    (tmp / "node.crt").write_bytes(state(node).certificate_pem)
    keys = {"enabled": ["password", "eidas"],
            "eidas": {"node_sso_url": f"{node_url}/sso", "node_entity_id": f"{node_url}/metadata",
                      "node_certificate_file": str(tmp / "node.crt"),
                      "encryption_key_file": str(tmp / "idp" / "keys" / "eidas-encryption.key"),
                      "encryption_cert_file": str(tmp / "idp" / "keys" / "eidas-encryption.crt"),
                      "generate_keys": True}}
    with live_demo(tmp, idp_port=idp_port, keys=keys, key_types=KEY_TYPES) as running:
        services = running.services
        registered = sp_from_metadata(sp_metadata(
            adapter=services.adapters["eidas"], signer=services.signer, now=services.clock.now(),
            return_url=f"{running.idp_url}/login/eidas/return"))
        state(node).sps = {registered["entity_id"]: registered}
        running.servers.append(serve_in_thread(node, HOST, node_port))
        # Mon Espace, for this test, asks for level 300 and accepts the European key.
        spec = running.portals["monespace"]
        policy = {**dict(spec.policy), "accepted_keys": ["password", "eidas"], "min_level": 300}
        register_portal(services, replace(spec, policy=tuple(policy.items())), tmp / "portals")
        running.node_url = node_url
        running.node = node
        yield running


def test_a_european_citizen_logs_in_to_a_level_300_portal(demo, context):
    page = context.new_page()
    seen = record_urls(page)
    monespace = demo.portal_url("monespace")
    page.goto(monespace + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#key-eidas")
    page.select_option("#country", "DE")
    page.click("#submit")
    page.wait_for_url(f"{demo.node_url}/sso")
    assert page.locator("#requested").inner_text() == "substantial"  # what the portal's 300 needs
    page.check("#person-de-anna")
    page.check("#level-substantial")
    page.click("#login")
    page.wait_for_url(f"{monespace}/")
    cells = page.locator("#attributes td[data-attr]")
    shown = {cells.nth(i).get_attribute("data-attr"): cells.nth(i).inner_text() for i in range(cells.count())}
    assert (shown["givenName"], shown["surname"], shown["birthDate"]) == ("Anna", "Schneider", "1988-04-12")
    assert any(url.startswith(f"{demo.idp_url}/login/eidas/return") for url in seen), seen
    assert state(demo.node).requests[-1]["country"] == "DE"
