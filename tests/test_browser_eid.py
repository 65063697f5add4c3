"""The eID key in a real browser (Debian's chromium through Playwright): Mon
Espace, asking for level 500 → Sésame's key choice → "lecteur de cartes eID"
→ "S'identifier": the page's own script asks Sésame for a challenge and calls
the real ``sesame eid`` helper (a subprocess on a loopback port, CORS
preflight and all), which signs with a SoftHSM2 card after the PIN (given to
it non-interactively) → Sésame checks chain and OCSP → Mon Espace shows the
national register number and names from the certificate."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from idp.app.demo import register_portal
from sandbox.eid import PIN
from tests.live import free_ports, live_demo
from tests.saml_sp import audit_events

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.eid_fixtures"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, eid_world):
    tmp = tmp_path_factory.mktemp("live-eid")
    idp_port, helper_port = free_ports(2)
    keys = {"enabled": ["password", "eid"], "eid": eid_world.settings(helper_port=helper_port)}
    with live_demo(tmp, idp_port=idp_port, keys=keys) as running:
        spec = running.portals["monespace"]
        policy = {**dict(spec.policy), "accepted_keys": ["password", "eid"], "min_level": 500}
        register_portal(running.services, replace(spec, policy=tuple(policy.items())), tmp / "portals")
        running.helper_port, running.eid, running.tmp = helper_port, eid_world, tmp
        running.helper = start_helper(running, PIN)
        try:
            yield running
        finally:
            stop_helper(running)


def eid_command(demo, pin: str, *args) -> tuple[list[str], dict]:
    pin_file = demo.tmp / f"pin-{pin}"
    pin_file.write_text(pin)
    return ([sys.executable, "-m", "idp.app.cli", "eid", *args, "--module", demo.eid.module, "--origin", demo.idp_url,
             "--pin-file", str(pin_file), "--card", demo.eid.pki.issued["marie"].person.nrn],
            {"SOFTHSM2_CONF": str(demo.eid.conf), "PATH": "/usr/bin:/bin"})


def start_helper(demo, pin: str):
    """The real `sesame eid`, serving the page on the configured loopback port, the PIN from a file."""
    command, env = eid_command(demo, pin, "--port", str(demo.helper_port))
    helper = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(demo.helper_port)
    return helper


def stop_helper(demo) -> None:
    if demo.helper is not None:
        demo.helper.terminate()
        demo.helper.wait(timeout=10)
        demo.helper = None


def _wait_for(port: int) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("sesame eid did not start")


def test_a_citizen_logs_in_with_the_card_reader_helper(demo, context):
    page = context.new_page()
    monespace = demo.portal_url("monespace")
    page.goto(monespace + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#key-eid")
    page.wait_for_url(f"{demo.idp_url}/login/eid/?*")
    page.click("#eid-start")  # the page's script: challenge → helper on 127.0.0.1 → signed token
    page.wait_for_url(f"{monespace}/", timeout=20_000)
    cells = page.locator("#attributes td[data-attr]")
    shown = {cells.nth(i).get_attribute("data-attr"): cells.nth(i).inner_text() for i in range(cells.count())}
    assert shown["egovNRN"] == "85031412302"
    assert (shown["givenName"], shown["surname"]) == ("Marie", "Dupont")


def to_eid_page(demo, context):
    page = context.new_page()
    page.goto(demo.portal_url("monespace") + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#key-eid")
    page.wait_for_url(f"{demo.idp_url}/login/eid/?*")
    return page


def test_a_wrong_pin_is_said_in_the_citizens_language_with_the_tries_left(demo, context):
    stop_helper(demo)
    demo.helper = start_helper(demo, "9999")
    try:
        page = to_eid_page(demo, context)
        page.click("#eid-start")
        status = page.locator('#eid-status[data-code="pin_incorrect"]')
        status.wait_for()
        assert "Code PIN incorrect" in status.inner_text()
        assert "peu d'essais" in status.inner_text()  # SoftHSM2 says CKF_USER_PIN_COUNT_LOW
        assert page.url.startswith(f"{demo.idp_url}/login/eid/")
        page.wait_for_timeout(300)  # the page tells Sésame, for the audit
        rows = audit_events(demo.services, "login.failure")
        assert [(r.result, r.detail.get("pin_tries")) for r in rows][-1] == ("eid_pin_incorrect", "count_low")
    finally:
        stop_helper(demo)


def test_without_the_helper_the_page_offers_the_code_to_paste(demo, context):
    stop_helper(demo)  # nobody on the loopback port
    page = to_eid_page(demo, context)
    page.click("#eid-start")
    page.locator('#eid-status[data-code="no_helper"]').wait_for()
    assert page.locator("#eid-fallback").get_attribute("open") is not None
    shown = page.locator("#eid-command").inner_text()
    nonce = shown.split("--nonce ", 1)[1].strip()  # the challenge the script fetched, not the page's first
    command, env = eid_command(demo, PIN, "sign", "--nonce", nonce)
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    page.fill("#token", run.stdout.strip())
    page.click("#submit")
    page.wait_for_url(demo.portal_url("monespace") + "/")
    assert page.locator('#attributes td[data-attr="egovNRN"]').inner_text() == "85031412302"


# The Web eID browser extension's side of its window-message protocol, as its content
# script behaves: an acknowledgement at once, then the token (here Jan's SoftHSM2 card,
# signing through PKCS#11 in this test process's card worker) or a failure.
EXTENSION = """
window.addEventListener("message", async (event) => {
  if (event.source !== window || !event.data || event.data.action !== "web-eid:authenticate") { return; }
  window.postMessage({ action: "web-eid:authenticate-ack" }, window.location.origin);
  const token = await window.webEidCard(event.data.challengeNonce, window.location.origin);
  const reply = token.error ? { action: "web-eid:authenticate-failure", error: { code: token.error } }
                            : Object.assign({ action: "web-eid:authenticate-success" }, token);
  window.postMessage(reply, window.location.origin);
});
"""


def test_the_page_uses_the_web_eid_extension_when_the_citizen_has_it(demo, context):
    """With the extension, the page does not call the helper (which holds Marie's card):
    the portal receives Jan's identity, from the card the extension signed with."""
    asked: list[str] = []

    def card(nonce: str, origin: str) -> dict:
        asked.append(nonce)
        assert len(nonce) >= 44  # what the extension demands of a challenge
        return demo.eid.sign_with_card("jan", nonce, origin=origin)

    context.expose_function("webEidCard", card)
    context.add_init_script(EXTENSION)
    page = to_eid_page(demo, context)
    page.click("#eid-start")
    page.wait_for_url(demo.portal_url("monespace") + "/", timeout=20_000)
    assert len(asked) == 1
    assert page.locator('#attributes td[data-attr="egovNRN"]').inner_text() == demo.eid.pki.issued["jan"].person.nrn


def test_a_cancel_in_the_extension_is_said_on_the_page(demo, context):
    context.expose_function("webEidCard", lambda nonce, origin: {"error": "ERR_WEBEID_USER_CANCELLED"})
    context.add_init_script(EXTENSION)
    page = to_eid_page(demo, context)
    page.click("#eid-start")
    page.locator('#eid-status[data-code="cancelled"]').wait_for()
    assert "annulé" in page.locator("#eid-status").inner_text()
