"""Hostile and broken SAML requests: a clear page in the user's language, an
audit event, no stack trace, and never a response to an unregistered URL."""
from __future__ import annotations

import base64
import datetime as dt
import zlib
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from sqlalchemy import select

from idp.persistence.models import AuditEvent
from tests.saml_sp import send

SSO = "/saml/sso"


def deflate(xml: bytes) -> str:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(xml) + c.flush()).decode()


def authn_request(*, issuer="http://localhost:18082/metadata", acs="http://localhost:18082/acs", req_id="_abc123",
                  instant=None, destination="http://idp.test/saml/sso", extra="") -> bytes:
    instant = instant or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{req_id}" Version="2.0" '
            f'IssueInstant="{instant}" Destination="{destination}" AssertionConsumerServiceURL="{acs}" '
            f'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">'
            f'<saml:Issuer>{issuer}</saml:Issuer>{extra}</samlp:AuthnRequest>').encode()


def rejected(response, code: str, services, *, lang_text: str | None = None):
    body = response.get_data(as_text=True)
    assert response.status_code == 400, (response.status_code, body[:300])
    assert f'data-code="{code}"' in body
    assert 'id="autopost"' not in body and "SAMLResponse" not in body
    assert "Traceback" not in body
    if lang_text:
        assert lang_text in body
    with services.database.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "saml.rejected")))
    assert events and events[-1].result == code


def test_unknown_portal(world):
    app, services, *_ = world
    xml = authn_request(issuer="https://evil.example/metadata")
    r = app.test_client().get(SSO, query_string={"SAMLRequest": deflate(xml)})
    rejected(r, "unknown_portal", services, lang_text="pas connu")


def test_unknown_portal_in_dutch(world):
    app, services, *_ = world
    r = app.test_client().get(SSO, query_string={"SAMLRequest": deflate(authn_request(issuer="urn:x"))},
                              headers={"Accept-Language": "nl-BE,nl;q=0.9"})
    rejected(r, "unknown_portal", services, lang_text="niet bekend")


def test_consumer_url_not_in_metadata(world):
    app, services, *_ = world
    xml = authn_request(acs="https://attacker.example/acs")
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": deflate(xml)}), "unknown_consumer_url",
             services)


def test_unsigned_request_where_signature_required(world):
    app, services, monespace, _ = world  # Mon Espace's metadata says AuthnRequestsSigned
    sent = monespace.request(sign=False)
    rejected(send(app.test_client(), sent), "signature_required", services)


def test_tampered_redirect_signature(world):
    app, services, monespace, _ = world
    sent = monespace.request()
    params = parse_qsl(sent.query)
    tampered = "&".join(f"{k}={quote(v if k != 'RelayState' else '/elsewhere', safe='')}" for k, v in params)
    rejected(app.test_client().get(f"{sent.path}?{tampered}"), "bad_signature", services)


def test_tampered_post_signature(world):
    app, services, monespace, _ = world
    from saml2 import BINDING_HTTP_POST
    sent = monespace.request(binding=BINDING_HTTP_POST)
    xml = base64.b64decode(sent.data["SAMLRequest"])
    tampered = xml.replace(b'AssertionConsumerServiceURL="http://localhost:18081/acs"',
                           b'AssertionConsumerServiceURL="http://localhost:18081/acs" ForceAuthn="true"', 1)
    assert tampered != xml
    sent.data["SAMLRequest"] = base64.b64encode(tampered).decode()
    rejected(app.test_client().post(sent.path, data=sent.data), "bad_signature", services)


def test_stale_request(world):
    app, services, *_ = world
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = authn_request(instant=old)
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": deflate(xml)}), "stale_request", services)


def test_replayed_request_id(world):
    app, services, *_ = world
    query = {"SAMLRequest": deflate(authn_request(req_id="_replay1"))}
    first = app.test_client().get(SSO, query_string=query)
    assert first.status_code == 303
    rejected(app.test_client().get(SSO, query_string=query), "replayed_request", services)


def test_wrong_destination(world):
    app, services, *_ = world
    xml = authn_request(destination="https://other-idp.example/sso")
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": deflate(xml)}), "wrong_destination", services)


@pytest.mark.parametrize("payload", [
    b"<not-closed",
    b"<samlp:Response xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol'/>",
    b"plain text",
])
def test_malformed_xml(world, payload):
    app, services, *_ = world
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": deflate(payload)}), "malformed_request",
             services)


def test_dtd_and_entities_refused(world):
    app, services, *_ = world
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            + authn_request().replace(b"_abc123", b"_dtd1").replace(b"http://localhost:18082/metadata",
                                                                        b"&lol2;"))
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": deflate(bomb)}), "malformed_request",
             services)


def test_external_entity_refused(world):
    app, services, *_ = world
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + \
        authn_request(issuer="&x;")
    rejected(app.test_client().post(SSO, data={"SAMLRequest": base64.b64encode(xxe).decode()}),
             "malformed_request", services)


def test_oversized_message(world):
    app, services, *_ = world
    huge = authn_request(extra="<saml:Foo>" + "A" * 300_000 + "</saml:Foo>")
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": deflate(huge)}), "malformed_request",
             services)


def test_deflate_bomb_stops_at_limit(world):
    app, services, *_ = world
    bomb = deflate(b"<" + b"a" * 50_000_000)
    rejected(app.test_client().get(SSO, query_string={"SAMLRequest": bomb}), "malformed_request", services)


@pytest.mark.parametrize("value", ["%%%not-base64", base64.b64encode(b"not deflate at all").decode()])
def test_broken_base64_or_deflate(world, value):
    app, services, *_ = world
    rejected(app.test_client().get(f"{SSO}?{urlencode({'SAMLRequest': value})}"), "malformed_request", services)


def test_missing_request(world):
    app, services, *_ = world
    rejected(app.test_client().get(SSO), "malformed_request", services)


def test_relay_state_too_long(world):
    """Over ``[saml] max_relay_state_bytes`` (1024 by default, counted in UTF-8): refused, never cut."""
    app, services, *_ = world
    query = {"SAMLRequest": deflate(authn_request(req_id="_rs1")), "RelayState": "/é" * 342}  # 1026 bytes
    rejected(app.test_client().get(SSO, query_string=query), "malformed_request", services,
             lang_text="illisible ou incomplète")
    with services.database.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.event == "saml.rejected")).all()[-1]
    assert event.detail["reason"] == "RelayState of 1026 bytes, more than the 1024 allowed"


def test_relay_state_up_to_the_bound_is_kept(world):
    """A long deep link (1024 bytes, what SPs put in RelayState) passes the checks."""
    app, services, *_ = world
    query = {"SAMLRequest": deflate(authn_request(req_id="_rs2")), "RelayState": "/" + "d" * 1023}
    assert app.test_client().get(SSO, query_string=query).status_code == 303


def test_relay_state_bound_is_configuration(make_idp, tmp_path):
    from tests.saml_sp import FSE, TestPortal

    app, services = make_idp(saml={"max_relay_state_bytes": 200})
    TestPortal(services, FSE, tmp_path / "sp")
    query = {"SAMLRequest": deflate(authn_request(req_id="_rs3")), "RelayState": "x" * 201}
    rejected(app.test_client().get(SSO, query_string=query), "malformed_request", services)
    query = {"SAMLRequest": deflate(authn_request(req_id="_rs4")), "RelayState": "x" * 200}
    assert app.test_client().get(SSO, query_string=query).status_code == 303


def test_relay_state_is_escaped_in_autopost(world):
    app, services, _, fse = world
    from tests.saml_sp import autopost_fields, follow, login_with_password
    browser = app.test_client()
    sent = fse.request(relay_state='"><script>alert(1)</script>')
    page = follow(browser, send(browser, sent))
    done = login_with_password(browser, page, username="marie.dupont")
    body = done.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert autopost_fields(done)[1]["RelayState"] == '"><script>alert(1)</script>'


def test_body_over_the_limit_is_refused_before_reading(world):
    app, services, *_ = world
    r = app.test_client().post(SSO, data={"SAMLRequest": "A" * 1_000_000})
    body = r.get_data(as_text=True)
    assert r.status_code == 413 and 'data-code="malformed_request"' in body and "Traceback" not in body
    with services.database.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "saml.rejected")))
    assert events[-1].result == "message_too_large"


def test_a_long_entity_id_and_request_id_are_remembered_without_error(world, tmp_path):
    """The replay key is a digest: a 1000-character entity ID with a 256-character
    request ID fits the store (it did not: 500)."""
    from dataclasses import replace

    from tests.saml_sp import MON_ESPACE, TestPortal, follow, send

    app, services, _, _ = world
    long_portal = TestPortal(services, replace(MON_ESPACE, slug="long",
                                               base_url="http://localhost:18081/" + "p" * 900), tmp_path / "long")
    assert len(long_portal.entity_id) > 900
    browser = app.test_client()
    sent = long_portal.request(message_id="_" + "r" * 255)
    page = follow(browser, send(browser, sent))
    assert page.status_code == 200 and "/login/password/" in page.get_data(as_text=True)
    replay = send(app.test_client(), sent)
    assert replay.status_code == 400 and 'data-code="replayed_request"' in replay.get_data(as_text=True)
