"""itsme in a real browser (Debian's chromium through Playwright): Mon Espace,
asking for level 500, → Sésame's key choice → itsme → the itsme sandbox (its
own site, 127.0.0.1, a real OpenID Connect provider in a thread) → the mobile
number → "Confirmer" (the app) → back at Sésame → back at the portal with the
national register number.  The sandbox checks our ``private_key_jwt`` against
Sésame's live JWKS URL (/keys/itsme/jwks.json)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from idp.app.demo import register_portal, serve_in_thread
from sandbox.itsme import client, create_sandbox_app
from tests.browsers import record_urls
from tests.live import HOST, NAME, free_ports, live_demo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live-itsme")
    idp_port, sandbox_port = free_ports(2)
    idp_url, issuer = f"http://{NAME}:{idp_port}", f"http://{HOST}:{sandbox_port}/v2"
    sandbox = create_sandbox_app(issuer, clients={"sesame-demo": client(
        redirect_uris=[f"{idp_url}/login/itsme/return"], jwks_uri=f"{idp_url}/keys/itsme/jwks.json",
        service_codes=["SESAME_LOGIN"])})
    keys = {"enabled": ["password", "itsme"],
            "itsme": {"issuer": issuer, "client_id": "sesame-demo", "service_code": "SESAME_LOGIN",
                      "signing_key_file": str(tmp / "idp" / "keys" / "itsme-signing.pem"),
                      "encryption_key_file": str(tmp / "idp" / "keys" / "itsme-encryption.pem"),
                      "generate_keys": True}}
    with live_demo(tmp, idp_port=idp_port, keys=keys) as running:
        running.servers.append(serve_in_thread(sandbox, HOST, sandbox_port))
        # Mon Espace, for this test, asks for level 500 and accepts itsme (its registration, not its code).
        spec = running.portals["monespace"]
        policy = {**dict(spec.policy), "accepted_keys": ["password", "itsme"], "min_level": 500}
        register_portal(running.services, replace(spec, policy=tuple(policy.items())), tmp / "portals")
        running.sandbox_url = issuer
        yield running


def test_a_citizen_logs_in_to_a_level_500_portal_with_itsme(demo, context):
    page = context.new_page()
    seen = record_urls(page)
    monespace = demo.portal_url("monespace")
    page.goto(monespace + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    assert page.locator("#key-password").count() == 0  # level 100: not offered to a portal at 500
    page.click("#key-itsme")
    page.wait_for_url(f"{demo.sandbox_url}/authorize?*")
    page.fill("#phone", "0470 12 34 56")
    page.click("#next")
    assert "Confirmez dans votre app itsme" in page.locator("h1").inner_text()
    page.click("#confirm")  # "Confirmer": what the app would do
    page.wait_for_url(f"{monespace}/")
    cells = page.locator("#attributes td[data-attr]")
    shown = {cells.nth(i).get_attribute("data-attr"): cells.nth(i).inner_text() for i in range(cells.count())}
    assert shown["egovNRN"] == "85031412302"
    assert (shown["givenName"], shown["surname"]) == ("Marie", "Dupont")
    assert any(url.startswith(f"{demo.idp_url}/login/itsme/return?") for url in seen), seen
