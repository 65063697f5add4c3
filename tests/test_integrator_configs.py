"""The integrator guide's configurations (docs/portals.md, "Configuring your
service provider") are the ones that work: each block is read from the guide
itself, its placeholders replaced, and run against Sésame by the real software
(python3-saml, pysaml2); the Shibboleth attribute map must name every
attribute Sésame can release.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor

from idp.app.cli import main as sesame
from metadata.policy import ATTRIBUTE_PROFILE
from tests.saml_sp import autopost_fields, follow, login_with_password
from tests.test_interop_python3_saml import request_data, sp_keys, world  # noqa: F401 - fixtures

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "portals.md"
PORTAL = "http://localhost:18090"  # where the guide says https://portal.example.be
BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"


def block(tag: str) -> str:
    """The fenced block that follows ``<!-- config: tag -->`` in the guide."""
    found = re.search(rf"<!-- config: {re.escape(tag)} -->\s*```\w*\n(.*?)```", GUIDE.read_text(encoding="utf-8"),
                      re.S)
    assert found, f"docs/portals.md has no block {tag!r}"
    return found[1]


def placed(text: str, sesame_url: str) -> str:
    return text.replace("https://portal.example.be", PORTAL).replace("https://sesame.example.be", sesame_url)


def register(world, metadata_xml: bytes, name: str) -> None:  # noqa: F811 - the fixture's value
    path = world.tmp_path / f"{name}.xml"
    path.write_bytes(metadata_xml)
    assert sesame(["--config", str(world.config), "portal", "add", str(path), "--accepted-keys", "password",
                   "--attributes", ",".join(ATTRIBUTE_PROFILE), "--nameid-format", "transient"]) == 0
    world.services.registry.refresh()


def test_the_shibboleth_attribute_map_names_every_attribute_sesame_releases():
    root = etree.fromstring(block("shibboleth-attribute-map").encode())
    ns = "{urn:mace:shibboleth:2.0:attribute-map}"
    basic = {a.get("name"): a.get("id") for a in root.iter(ns + "Attribute") if a.get("nameFormat") == BASIC}
    assert set(basic) == set(ATTRIBUTE_PROFILE)
    assert all(name == identifier for name, identifier in basic.items())  # the names portals already read
    assert root.find(f"{ns}Attribute[@name='urn:oasis:names:tc:SAML:2.0:nameid-format:persistent']") is not None


def test_the_python3_saml_settings_log_in_and_out(world):  # noqa: F811
    key_pem, cert_pem = world.sp_keys
    settings = json.loads(placed(block("python3-saml"), world.base_url)
                          .replace("PORTAL_CERTIFICATE", json.dumps(cert_pem)[1:-1])
                          .replace("PORTAL_PRIVATE_KEY", json.dumps(key_pem)[1:-1]))
    settings = OneLogin_Saml2_IdPMetadataParser.merge_settings(
        settings, OneLogin_Saml2_IdPMetadataParser.parse(world.idp_metadata))
    settings["security"]["authnRequestsSigned"] = True  # the guide's choice, over the IdP metadata's default
    sp_metadata = OneLogin_Saml2_Settings(settings, sp_validation_only=True).get_sp_metadata()
    register(world, sp_metadata if isinstance(sp_metadata, bytes) else sp_metadata.encode(), "python3-saml")
    browser = world.app.test_client()
    auth = OneLogin_Saml2_Auth(request_data("/saml/login"), settings)
    url = urlsplit(auth.login(return_to="/after"))
    request_id = auth.get_last_request_id()
    page = follow(browser, browser.get(f"{url.path}?{url.query}"))
    action, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    assert action == f"{PORTAL}/saml/acs"
    acs = OneLogin_Saml2_Auth(request_data("/saml/acs", post_data=fields), settings)
    acs.process_response(request_id=request_id)
    assert acs.get_errors() == [], acs.get_last_error_reason()
    attributes = acs.get_attributes()
    assert attributes["surname"] == ["Dupont"] and attributes["egovNRN"] == ["85031412302"]
    assert attributes["authenticationMethod"] == ["password"]

    logout = urlsplit(acs.logout(name_id=acs.get_nameid(), session_index=acs.get_session_index(),
                                 name_id_format=acs.get_nameid_format()))
    answer = urlsplit(browser.get(f"{logout.path}?{logout.query}").headers["Location"])
    assert f"{answer.scheme}://{answer.netloc}{answer.path}" == f"{PORTAL}/saml/sls"
    sls = OneLogin_Saml2_Auth(request_data("/saml/sls", get_data={k: v[0] for k, v in parse_qs(answer.query).items()},
                                           query_string=answer.query), settings)
    sls.process_slo(keep_local_session=True)
    assert sls.get_errors() == [], sls.get_last_error_reason()


def test_the_pysaml2_configuration_logs_in_and_out(world, tmp_path):  # noqa: F811
    namespace: dict = {}
    exec(placed(block("pysaml2"), world.base_url), namespace)  # the guide's block, as an integrator pastes it
    config_dict = namespace["CONFIG"]
    key_pem, cert_pem = world.sp_keys
    (tmp_path / "portal.key").write_text(key_pem)
    (tmp_path / "portal.crt").write_text(cert_pem)
    config_dict.update(key_file=str(tmp_path / "portal.key"), cert_file=str(tmp_path / "portal.crt"))
    assert config_dict["metadata"] == {"remote": [{"url": f"{world.base_url}/saml/metadata"}]}
    # The one change: the test's Sésame answers no network fetch, its metadata is handed over as read.
    config_dict["metadata"] = {"inline": [world.idp_metadata]}
    config = SPConfig()
    config.load(config_dict)
    register(world, str(entity_descriptor(config)).encode(), "pysaml2")
    client = Saml2Client(config)
    browser = world.app.test_client()
    # As the guide says: name the algorithms (pysaml2 would sign an HTTP-Redirect query with RSA-SHA1).
    request_id, info = client.prepare_for_authenticate(entityid=world.services.settings.entity_id,
                                                        binding=BINDING_HTTP_REDIRECT, relay_state="/after",
                                                        sigalg=config_dict["signing_algorithm"])
    url = urlsplit(dict(info["headers"])["Location"])
    page = follow(browser, browser.get(f"{url.path}?{url.query}"))
    action, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    assert action == f"{PORTAL}/saml/acs"
    response = client.parse_authn_request_response(fields["SAMLResponse"], BINDING_HTTP_POST,
                                                   outstanding={request_id: "/after"})
    identity = response.get_identity()
    assert identity["givenName"] == ["Marie"] and identity["birthDate"] == ["1985-03-14"]

    result = client.global_logout(response.name_id, sign=True, sign_alg=config_dict["signing_algorithm"],
                                  digest_alg=config_dict["digest_algorithm"])
    ((binding, http_args),) = result.values()
    assert binding == BINDING_HTTP_REDIRECT
    logout = urlsplit(dict(http_args["headers"])["Location"])
    answer = urlsplit(browser.get(f"{logout.path}?{logout.query}").headers["Location"])
    assert f"{answer.scheme}://{answer.netloc}{answer.path}" == f"{PORTAL}/saml/slo"
    assert client.parse_logout_request_response(parse_qs(answer.query)["SAMLResponse"][0],
                                                BINDING_HTTP_REDIRECT).status_ok()
