"""The European key's test world: a pysaml2 portal, Sésame (Flask test client)
with the eIDAS key, and the eIDAS sandbox node served as a real HTTP server in
a thread (module scope: its EC keys are made once).  The citizen's part at the
node (the sandbox page, "Se connecter") is driven through the same sandbox
application, as the browser would post it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters import ADAPTERS
from adapters.eidas import EidasAdapter
from idp import create_app
from idp.app.demo import create_citizens, serve_in_thread
from idp.app.services import Services
from sandbox.eidas import create_sandbox_app, sp, state
from tests.conftest import idp_settings
from tests.live import HOST, free_port
from tests.saml_sp import MON_ESPACE, TestPortal, audit_events, follow, form_action, form_fields, send

KEY_TYPES = {**ADAPTERS, "eidas": EidasAdapter}
BASE = "http://idp.test"
RETURN = f"{BASE}/login/eidas/return"
SP_ENTITY = f"{BASE}/keys/eidas/metadata"


@pytest.fixture(scope="module")
def node():
    port = free_port()
    base = f"http://{HOST}:{port}"
    app = create_sandbox_app(base)
    server = serve_in_thread(app, HOST, port)
    app.base_url = base
    yield app
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def eidas_keys(tmp_path_factory, node):
    """Our encryption key pair (made once: generate_keys) and the node's certificate file."""
    folder = tmp_path_factory.mktemp("eidas-keys")
    (folder / "node.crt").write_bytes(state(node).certificate_pem)
    return folder


def eidas_settings(node, folder, **extra) -> dict:
    return {"node_sso_url": f"{node.base_url}/sso", "node_entity_id": f"{node.base_url}/metadata",
            "node_certificate_file": str(folder / "node.crt"),
            "encryption_key_file": str(folder / "eidas-encryption.key"),
            "encryption_cert_file": str(folder / "eidas-encryption.crt"), "generate_keys": True, **extra}


@dataclass
class Sent:
    action: str
    fields: dict


class EidasWorld:
    def __init__(self, app, services, portal, node):
        self.app, self.services, self.portal, self.node = app, services, portal, node
        self.browser = app.test_client()

    @property
    def adapter(self) -> EidasAdapter:
        return self.services.adapters["eidas"]

    def audit(self, event: str):
        return audit_events(self.services, event)

    def country_page(self, browser=None):
        browser = browser or self.browser
        page = follow(browser, send(browser, self.portal.request()))
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        assert 'id="key-eidas"' in page.get_data(as_text=True)
        tx = parse_qs(urlsplit(page.request.url).query)["tx"][0]
        return tx, browser.get(f"/login/eidas/?tx={tx}")

    def to_node(self, country: str = "DE", browser=None) -> Sent:
        """Portal → key choice → the European key → country: what the browser posts to the node."""
        browser = browser or self.browser
        tx, page = self.country_page(browser)
        assert page.status_code == 200 and 'id="country"' in page.get_data(as_text=True)
        token = form_fields(page.get_data(as_text=True))["csrf_token"]
        out = browser.post(f"/login/eidas/country?tx={tx}", data={"csrf_token": token, "country": country})
        assert out.status_code == 200, out.get_data(as_text=True)[:400]
        text = out.get_data(as_text=True)
        assert 'id="autopost"' in text
        return Sent(form_action(text), form_fields(text))

    def at_node(self, sent: Sent, *, person: str = "de-anna", level: str = "substantial",
                decision: str = "login") -> Sent:
        """The citizen at the sandbox node: a person, a level, "Se connecter" (or "Annuler")."""
        node = self.node.test_client()
        path = urlsplit(sent.action).path
        page = node.post(path, data=sent.fields)
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        txn = form_fields(page.get_data(as_text=True))["txn"]
        back = node.post(path + "/login", data={"txn": txn, "person": person, "level": level,
                                                 "decision": decision})
        assert back.status_code == 200, back.get_data(as_text=True)[:400]
        text = back.get_data(as_text=True)
        return Sent(form_action(text), form_fields(text))

    def back_at_sesame(self, sent: Sent, browser=None):
        assert sent.action == RETURN
        return (browser or self.browser).post(urlsplit(sent.action).path, data=sent.fields)

    def login(self, **kwargs):
        return self.back_at_sesame(self.at_node(self.to_node(), **kwargs))


def make_world(tmp_path, clock, node, folder, *, min_level=300, key_settings=None, **idp_kwargs) -> EidasWorld:
    """Sésame with the European key and a portal at ``min_level``; ``idp_kwargs`` go to
    ``idp_settings`` (``store=``, ``database=``: a node of a cluster)."""
    settings = idp_settings(tmp_path, base_url=BASE, keys={
        "enabled": ["password", "eidas"], "eidas": key_settings or eidas_settings(node, folder)}, **idp_kwargs)
    services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
    create_citizens(services)
    app = create_app(services=services)
    spec = replace(MON_ESPACE, policy=(
        ("accepted_keys", ["password", "eidas"]), ("min_level", min_level),
        ("attributes", ["surname", "givenName", "birthDate", "egovNRN", "eidasIdentifier"]),
        ("nameid_format", "persistent"), ("display_name", "Mon Espace")))
    portal = TestPortal(services, spec, tmp_path / "sp")
    register(node, services)
    return EidasWorld(app, services, portal, node)


def register(node, services) -> None:
    """Sésame's eIDAS key registered at the sandbox node; the node's clock is Sésame's."""
    st = state(node)
    st.reset()
    adapter = services.adapters["eidas"]
    st.sps = {SP_ENTITY: sp(entity_id=SP_ENTITY, acs_urls=[RETURN], signing_certificate=services.signer.certificate_pem,
                            encryption_certificate=adapter.encryption_certificate)}
    st.clock = services.clock.now
