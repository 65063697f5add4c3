"""The card-reader helper ``sesame eid``: the real command as a subprocess
(its loopback endpoint over real HTTP, CORS and Chromium's Private Network
Access preflight), and the card layer through PyKCS11 and SoftHSM2: wrong
PIN with what the token says of the tries left, no reader, no card, a card
pulled out mid-way."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import PyKCS11
import pytest

from adapters.eid import card as pkcs11
from adapters.eid import webeid
from sandbox.eid import PIN
from sandbox.eid.cards import write_config
from tests.live import free_port

pytest_plugins = ["tests.eid_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "http://localhost:8080"
NONCE = "n" * 43


def helper(eid_world, *args, conf: Path | None = None, pin: str = PIN, **kwargs):
    pin_file = eid_world.directory / f"pin-{pin}"
    pin_file.write_text(pin)
    return [sys.executable, "-m", "idp.app.cli", "eid", *args, "--module", eid_world.module,
            "--pin-file", str(pin_file)], {"SOFTHSM2_CONF": str(conf or eid_world.conf), "PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def serving(eid_world):
    """``sesame eid --origin ...`` serving on a free loopback port, Marie's card chosen."""
    port = free_port()
    command, env = helper(eid_world, "--origin", ORIGIN, "--port", str(port), "--card",
                          eid_world.pki.issued["marie"].person.nrn)
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            ask(port, "GET", "/status", origin=ORIGIN)
            break
        except OSError:
            time.sleep(0.1)
    yield port
    process.terminate()
    process.communicate(timeout=10)


def ask(port: int, method: str, path: str, *, origin: str | None, body: dict | None = None, headers=None,
        host: str | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    sent = {"Host": host or f"127.0.0.1:{port}", **({"Origin": origin} if origin else {}), **(headers or {})}
    raw = json.dumps(body).encode() if body is not None else None
    if raw is not None:
        sent["Content-Type"] = "application/json"
    connection.request(method, path, body=raw, headers=sent)
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    return answer.status, dict(answer.getheaders()), (json.loads(data) if data else None)


def test_the_private_network_preflight_is_answered_for_sesames_origin_only(serving):
    status, headers, _ = ask(serving, "OPTIONS", "/authenticate", origin=ORIGIN, headers={
        "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
        "Access-Control-Request-Private-Network": "true"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    status, headers, _ = ask(serving, "OPTIONS", "/authenticate", origin="https://evil.example", headers={
        "Access-Control-Request-Private-Network": "true"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_the_helper_signs_for_sesames_origin(serving, eid_world):
    status, headers, token = ask(serving, "POST", "/authenticate", origin=ORIGIN, body={"nonce": NONCE})
    assert status == 200, token
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    parsed = webeid.parse(json.dumps(token))
    webeid.verify(parsed, origin=ORIGIN, nonce=NONCE, allowed=("ES384",))  # the browser's Origin was signed
    assert parsed.certificate == eid_world.pki.issued["marie"].certificate


@pytest.mark.parametrize("origin, host, body", [
    ("https://evil.example", None, {"nonce": NONCE}),   # another site's page
    (None, None, {"nonce": NONCE}),                      # no Origin: not a browser's CORS request
    (ORIGIN, "evil.example", {"nonce": NONCE}),          # DNS rebinding: another Host
])
def test_other_callers_are_refused(serving, origin, host, body):
    status, headers, _ = ask(serving, "POST", "/authenticate", origin=origin, body=body, host=host)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("body", [{"nonce": "short"}, {"nonce": "x" * 43 + "<script>"}, {}, ["nonce"]])
def test_a_malformed_challenge_is_refused(serving, body):
    status, _, answer = ask(serving, "POST", "/authenticate", origin=ORIGIN, body=body)
    assert (status, answer) == (400, {"error": "bad_request"})


def test_a_wrong_pin_reports_the_pkcs11_error_and_the_tries_left(eid_world):
    command, env = helper(eid_world, "sign", "--origin", ORIGIN, "--nonce", NONCE, "--card",
                          eid_world.pki.issued["marie"].person.nrn, pin="9999")
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and run.stdout == ""
    assert "[pin_incorrect]" in run.stderr and "CKR_PIN_INCORRECT" in run.stderr
    assert "few tries left" in run.stderr  # SoftHSM2 raises CKF_USER_PIN_COUNT_LOW after a failure
    # The right PIN afterwards works (and the card's count starts again).
    command, env = helper(eid_world, "sign", "--origin", ORIGIN, "--nonce", NONCE, "--card",
                          eid_world.pki.issued["marie"].person.nrn)
    assert subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=60).returncode == 0


def test_the_card_layer_wrong_pin_and_removal(eid_world):
    wrong = eid_world.sign_with_card("luc", NONCE, origin=ORIGIN, pin="0000")
    assert (wrong["error"], wrong["tries"]) == (pkcs11.PIN_INCORRECT, "count_low")
    assert "CKR_PIN_INCORRECT" in wrong["detail"]
    # Every session of the slot gone between the PIN and the signature, as when the card is pulled out.
    removed = eid_world.sign_with_card("luc", NONCE, origin=ORIGIN, remove_midway=True)
    assert removed["error"] == pkcs11.REMOVED
    assert "format" in eid_world.sign_with_card("luc", NONCE, origin=ORIGIN)  # and back in: it signs
    assert pkcs11.pin_tries(PyKCS11.CKF_USER_PIN_FINAL_TRY) == "final_try"
    assert pkcs11.pin_tries(PyKCS11.CKF_USER_PIN_LOCKED | PyKCS11.CKF_USER_PIN_COUNT_LOW) == "locked"


def test_no_reader(eid_world, tmp_path):
    command, env = helper(eid_world, "sign", "--origin", ORIGIN, "--nonce", NONCE)
    command[command.index("--module") + 1] = str(tmp_path / "libnothing.so")
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "[no_reader]" in run.stderr


def test_no_card(eid_world, tmp_path):
    """A reader (SoftHSM2's free slot) with no eID card in it."""
    empty = write_config(tmp_path / "empty")
    command, env = helper(eid_world, "sign", "--origin", ORIGIN, "--nonce", NONCE, conf=empty)
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "[no_card]" in run.stderr
