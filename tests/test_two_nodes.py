"""The production layout, runnable (issue 11 §5): two real Sésame processes
(``sesame serve``, gunicorn), each with its own configuration file and data
folder, sharing one PostgreSQL database and one Redis, the secrets copied from
the first node as an operator does (docs/production.md).

The citizen's requests alternate between the two nodes, as a load balancer
without stickiness sends them: a login, a step-up to a portal that demands
level 400 (the authenticator-app key), and a logout, each hop on the other node.
"""
from __future__ import annotations

import html
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from itertools import cycle
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import requests
from saml2 import BINDING_HTTP_REDIRECT

from idp.app.cli import main
from idp.app.config import load_settings
from idp.app.demo import create_citizens
from idp.app.services import Services
from idp.clock import Clock
from tests.live import free_ports
from tests.saml_sp import FSE, MON_ESPACE, TestPortal, autopost_fields, form_action, form_fields
from tests.services import create_postgres_database, drop_postgres_database
from tests.test_cluster import copy_shared, node_config

pytestmark = pytest.mark.services

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
IDP = "http://idp.test"  # [server] base_url of both nodes: the load balancer's address


class Browser:
    """A citizen's browser behind a load balancer without stickiness: each request
    goes to the next node.  Cookies are kept by hand: Sésame marks them Secure
    outside demo mode, and the test talks plain HTTP to the nodes."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes, self.turn, self.cookies, self.seen = nodes, cycle(nodes), {}, []
        self.http = requests.Session()

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        parts = urlsplit(url)
        assert not parts.netloc or f"{parts.scheme}://{parts.netloc}" == IDP, url
        node = next(self.turn)
        self.seen.append(node)
        answer = self.http.request(method, f"{node}{parts.path}" + (f"?{parts.query}" if parts.query else ""),
                                   cookies=self.cookies, allow_redirects=False, **kwargs)
        self.cookies.update(answer.cookies.get_dict())
        assert answer.status_code < 500, answer.text[:300]
        return answer

    def follow(self, answer: requests.Response) -> requests.Response:
        while answer.status_code in (302, 303):
            answer = self.request("GET", answer.headers["Location"])
        return answer


def start_node(config, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "idp.app.cli", "--config", str(config), "serve",
                                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200:
                return process
        except (requests.ConnectionError, requests.Timeout):
            pass
        if process.poll() is not None:
            raise RuntimeError("sesame serve exited")
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)  # never left behind
    process.wait(timeout=20)
    raise RuntimeError("sesame serve did not answer")


@pytest.fixture(scope="module")
def layout(tmp_path_factory, postgres_server, redis_url):
    tmp_path = tmp_path_factory.mktemp("nodes")
    database = create_postgres_database()
    prefix = f"nodes-{secrets.token_hex(4)}:"
    keys = '\n[keys]\nenabled = ["password", "totp"]\n'
    configs = []
    for name in "ab":
        config = node_config(tmp_path / name, database=database, store=redis_url, prefix=prefix)
        config.write_text(config.read_text() + keys)
        configs.append(config)
    assert main(["--config", str(configs[0]), "init-secrets"]) == 0
    copy_shared(tmp_path / "a" / "data", tmp_path / "b" / "data")
    # The operator's side, through the first node's configuration: citizens, portals.
    services = Services.build(load_settings(configs[0], environ={}), clock=Clock())
    create_citizens(services)
    marie = services.credentials.find(key="password", username="marie.dupont").person_fedid
    seed = pyotp.random_base32()
    services.credentials.activate(key="totp", person_fedid=marie,
                                  data={"seed": services.sealer.seal(seed, owner=f"{marie}:totp")})
    monespace = TestPortal(services, MON_ESPACE, tmp_path / "sp")
    fse = TestPortal(services, replace(FSE, policy=(
        ("accepted_keys", ["password", "totp"]), ("min_level", 400), ("attributes", ["surname", "givenName"]),
        ("nameid_format", "transient"), ("display_name", "FSE 21-27"))), tmp_path / "sp")
    ports = free_ports(2)
    processes = []
    try:
        for config, port in zip(configs, ports):
            processes.append(start_node(config, port))
        yield [f"http://127.0.0.1:{p}" for p in ports], monespace, fse, seed
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        services.database.dispose()
        drop_postgres_database(database)


def to_sesame(browser: Browser, sent) -> requests.Response:
    if sent.method == "GET":
        return browser.request("GET", f"{sent.path}?{sent.query}")
    return browser.request("POST", sent.path, data=sent.data)


def key_link(page: str, key: str) -> str:
    return html.unescape(re.search(rf'href="(/login/{key}/\?tx=[^"]+)"', page)[1])


def password_login(browser: Browser, choose: str) -> requests.Response:
    form = browser.request("GET", key_link(choose, "password")).text
    return browser.request("POST", form_action(form), data={
        "csrf_token": form_fields(form)["csrf_token"], "username": "marie.dupont", "password": "Demo-Sesame-2026"})


def autopost(answer: requests.Response) -> dict[str, str]:
    assert 'id="autopost"' in answer.text, answer.text[:400]
    return form_fields(answer.text)


def test_login_step_up_and_logout_alternating_between_two_nodes(layout):
    nodes, monespace, fse, seed = layout
    browser = Browser(nodes)

    # Login at Mon Espace with the password (level 100)
    choose = browser.follow(to_sesame(browser, monespace.request())).text
    first = monespace.parse(autopost(password_login(browser, choose))["SAMLResponse"])
    assert first.authn_info()[0][0].endswith("Level100")

    # Step-up: FSE demands 400; only the authenticator-app key is offered, with why
    choose = browser.follow(to_sesame(browser, fse.request())).text
    assert 'id="step-up" data-reason="level"' in choose
    assert set(re.findall(r'id="key-([a-z_]+)"', choose)) == {"totp"}
    form = browser.request("GET", key_link(choose, "totp")).text
    step = browser.request("POST", form_action(form), data={
        "csrf_token": form_fields(form)["csrf_token"], "username": "marie.dupont", "password": "Demo-Sesame-2026"})
    code_page = browser.follow(step).text
    done = browser.request("POST", form_action(code_page), data={
        "csrf_token": form_fields(code_page)["csrf_token"], "code": pyotp.TOTP(seed).now()})
    stepped = fse.parse(autopost(done)["SAMLResponse"])
    assert stepped.authn_info()[0][0].endswith("Level400")
    again = monespace.parse(autopost(to_sesame(browser, monespace.request()))["SAMLResponse"])
    assert again.authn_info()[0][0].endswith("Level400")  # one raised session, shared by both portals

    # Logout started at Mon Espace; FSE is told in its frame; Mon Espace gets Success
    http_args = monespace.client.do_logout(
        first.name_id, [monespace.services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=BINDING_HTTP_REDIRECT)[monespace.services.settings.entity_id][1]
    location = urlsplit(dict(http_args["headers"])["Location"])
    page = browser.request("GET", f"{location.path}?{location.query}")
    (frame,) = [html.unescape(src) for src in re.findall(r'<iframe src="([^"]+)"', page.text)]
    hop = urlsplit(browser.request("GET", frame).headers["Location"])
    query = parse_qs(hop.query)
    answered = fse.client.handle_logout_request(
        query["SAMLRequest"][0], stepped.name_id, BINDING_HTTP_REDIRECT, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, sigalg=query["SigAlg"][0], signature=query["Signature"][0])
    back = urlsplit(dict(answered["headers"])["Location"])
    assert 'data-confirmed="yes"' in browser.request("GET", f"{back.path}?{back.query}").text
    final = browser.request("GET", html.unescape(re.search(r'id="continue" href="([^"]+)"', page.text)[1]))
    reply = urlsplit(final.headers["Location"])
    assert monespace.client.parse_logout_request_response(parse_qs(reply.query)["SAMLResponse"][0],
                                                          BINDING_HTTP_REDIRECT).status_ok()
    after = browser.follow(to_sesame(browser, fse.request())).text  # logged out on both nodes
    assert "login/totp" in after
    assert set(browser.seen) == set(nodes)
