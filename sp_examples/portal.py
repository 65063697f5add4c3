"""A minimal SAML service provider (pysaml2), standing for a real portal such as
"Mon Espace" or "FSE 21-27".  It is what the demo shows and what the tests drive.

It is deliberately an ordinary pysaml2 SP, independent of Sésame's own code.
``add_saml_routes`` is its SAML part, shared with the example portals built on
it (sp_examples/monespace, sp_examples/fse); ``create_portal_app`` adds the bare
test page the older browser tests read.
"""
from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, abort, redirect, render_template, request, session
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from lxml import etree
from saml2.client import Saml2Client
from saml2.samlp import STATUS_UNKNOWN_PRINCIPAL
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.response import StatusError
from saml2.s_utils import status_message_factory, success_status_factory
from saml2.sigver import SignatureError

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class PortalSpec:
    """One example portal: who it is, how it talks, what it asks for."""

    slug: str
    title: str
    base_url: str
    binding: str = BINDING_HTTP_REDIRECT     # how it sends AuthnRequests
    sign_requests: bool = False
    want_assertions_signed: bool = True
    policy: tuple[tuple[str, object], ...] = ()
    # Publish an encryption key (KeyDescriptor use="encryption") and decrypt
    # EncryptedAssertions with it; Sésame encrypts when the *policy* says
    # ("encrypt_assertions", True).
    encrypt_assertions: bool = False
    # Offer single logout on the back channel too (SOAP, SAML bindings §3.2): Sésame
    # then calls /slo/soap itself instead of sending the browser.
    soap_logout: bool = False
    # Which application serves it: "generic" (the bare test page below),
    # "monespace" (sp_examples/monespace) or "fse" (sp_examples/fse).
    app: str = "generic"

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"


def sp_config(spec: PortalSpec, *, key_file: Path, cert_file: Path, idp_metadata: str,
              encryption_key_pair: tuple[Path, Path] | None = None) -> SPConfig:
    """pysaml2 SP configuration; with ``spec.encrypt_assertions`` the SP decrypts with
    ``encryption_key_pair`` (key, certificate), by default the signing pair."""
    conf = {
        "entityid": spec.entity_id,
        "name": spec.title,
        "service": {"sp": {
            "name": spec.title,
            "endpoints": {
                "assertion_consumer_service": [(f"{spec.base_url}/acs", BINDING_HTTP_POST)],
                "single_logout_service": [(f"{spec.base_url}/slo", BINDING_HTTP_REDIRECT),
                                          (f"{spec.base_url}/slo", BINDING_HTTP_POST)]
                # The same URL: pysaml2 checks a message's Destination against its endpoints.
                + ([(f"{spec.base_url}/slo", BINDING_SOAP)] if spec.soap_logout else []),
            },
            "logout_requests_signed": True,
            "authn_requests_signed": spec.sign_requests,
            "want_assertions_signed": spec.want_assertions_signed,
            "want_response_signed": not spec.want_assertions_signed,
            "allow_unsolicited": False,
            "name_id_format_allow_create": True,
        }},
        "key_file": str(key_file),
        "cert_file": str(cert_file),
        "metadata": {"inline": [idp_metadata]},
        "allow_unknown_attributes": True,
        "signing_algorithm": RSA_SHA256,
        "digest_algorithm": SHA256,
        "accepted_time_diff": 60,
    }
    if spec.encrypt_assertions:
        enc_key, enc_cert = encryption_key_pair or (key_file, cert_file)
        conf["encryption_keypairs"] = [{"key_file": str(enc_key), "cert_file": str(enc_cert)}]
    config = SPConfig()
    config.load(conf)
    return config


def sp_metadata(config: SPConfig) -> bytes:
    return str(entity_descriptor(config)).encode("utf-8")


def create_portal_app(spec: PortalSpec, config: SPConfig, *, idp_entity_id: str) -> Flask:
    """The bare test page: every attribute received, raw (what the older tests read)."""
    app = Flask(__name__, template_folder="templates")
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_NAME=f"{spec.slug}_session",
                      SESSION_COOKIE_SAMESITE="Lax")
    current_user = add_saml_routes(app, spec, config, idp_entity_id=idp_entity_id)

    @app.get("/")
    def home():
        return render_template("portal.html", spec=spec, user=current_user(), error=request.args.get("error"))

    return app


def add_saml_routes(app: Flask, spec: PortalSpec, config: SPConfig, *, idp_entity_id: str,
                    autopost_template: str | None = None):
    """The SAML part every portal shares: /metadata, /login (``?next=`` a local path),
    /acs, /logout (POST), /slo (front and back channel).  The portal's pages read the
    citizen from ``session["user"]`` through the returned ``current_user()``.

    Outcomes come back to ``/`` as query parameters: ``?error=<pysaml2 StatusError
    class name>`` (e.g. ``StatusAuthnFailed``) and ``?logout=ok|failed``.

    ``autopost_template``: the portal's own page for the HTTP-POST binding (given
    ``action`` and ``fields``), in place of pysaml2's English one."""
    client = Saml2Client(config)
    # Who is logged in here, by the NameID Sésame gave: a logout that arrives without
    # this browser's cookie (the back channel, a frame) still ends the right session.
    active: set[str] = set()
    lock = threading.Lock()

    def current_user():
        user = session.get("user")
        if user and user.get("nameid") not in active:
            session.pop("user", None)  # logged out by Sésame meanwhile
            return None
        return user

    @app.get("/metadata")
    def metadata():
        return sp_metadata(config), 200, {"Content-Type": "application/samlmetadata+xml"}

    @app.get("/login")
    def login():
        relay_state = request.args.get("next", "/")
        if not relay_state.startswith("/") or relay_state.startswith("//"):
            relay_state = "/"
        req_id, info = client.prepare_for_authenticate(
            entityid=idp_entity_id, relay_state=relay_state, binding=spec.binding,
            sign=spec.sign_requests, sigalg=RSA_SHA256 if spec.sign_requests else None,
            digest_alg=SHA256)
        session["outstanding"] = {**session.get("outstanding", {}), req_id: relay_state}
        if spec.binding == BINDING_HTTP_REDIRECT:
            return redirect(dict(info["headers"])["Location"], code=303)
        if autopost_template:
            return autopost(info["data"])
        return info["data"], 200, {"Content-Type": "text/html; charset=utf-8"}

    def autopost(html: str):
        """pysaml2's form, re-rendered by the portal (its language, its no-JavaScript text)."""
        from lxml import html as lxml_html

        form = lxml_html.fromstring(html).find(".//form")
        fields = {i.get("name"): i.get("value") for i in form.iter("input") if i.get("type") == "hidden"}
        return render_template(autopost_template, action=form.get("action"), fields=fields)

    @app.post("/acs")
    def acs():
        outstanding = session.get("outstanding", {})
        try:
            response = client.parse_authn_request_response(
                request.form["SAMLResponse"], BINDING_HTTP_POST, outstanding=outstanding)
        except StatusError as exc:
            return redirect(f"/?error={type(exc).__name__}", code=303)
        except (SignatureError, KeyError, ValueError) as exc:
            app.logger.warning("response refused: %s", exc)
            abort(400)
        if response is None:
            abort(400)
        outstanding.pop(response.in_response_to, None)
        session["outstanding"] = outstanding
        authn = response.authn_info()
        from saml2.ident import code

        with lock:
            active.add(str(response.name_id.text))
        session["user"] = {
            "subject": code(response.name_id),
            "nameid": str(response.name_id.text),
            "attributes": {k: v for k, v in response.get_identity().items()},
            "authn_context": authn[0][0] if authn else None,
        }
        target = request.form.get("RelayState") or "/"
        return redirect(target if target.startswith("/") and not target.startswith("//") else "/", code=303)

    @app.post("/logout")
    def logout():
        """Single logout through Sésame (SAML profiles §4.4), signed by this portal."""
        user = session.pop("user", None)
        subject = (user or {}).get("subject")
        if not subject:
            return redirect("/", code=303)
        with lock:
            active.discard(user.get("nameid"))
        from saml2.ident import decode

        result = client.global_logout(decode(subject), sign=True, sign_alg=RSA_SHA256, digest_alg=SHA256)
        for binding, http_args in result.values():
            if binding == BINDING_HTTP_REDIRECT:
                return redirect(dict(http_args["headers"])["Location"], code=303)
            return http_args["data"], 200, {"Content-Type": "text/html; charset=utf-8"}
        return redirect("/", code=303)

    @app.route("/slo", methods=["GET", "POST"])
    def slo():
        if request.method == "POST" and request.mimetype == "text/xml":
            return slo_soap()
        binding = BINDING_HTTP_REDIRECT if request.method == "GET" else BINDING_HTTP_POST
        if request.values.get("SAMLRequest"):  # Sésame logs the citizen out of this portal too
            args = dict(relay_state=request.values.get("RelayState"), sigalg=request.args.get("SigAlg"),
                        signature=request.args.get("Signature"))
            session.pop("user", None)
            http_args = end_session(request.values["SAMLRequest"], binding, **args)
            if http_args.get("method") == "GET" or "headers" in http_args and not http_args.get("data"):
                return redirect(dict(http_args["headers"])["Location"], code=303)
            return http_args["data"], 200, {"Content-Type": "text/html; charset=utf-8"}
        message = request.values.get("SAMLResponse")
        if not message:
            abort(400)
        response = client.parse_logout_request_response(message, binding)
        ok = response is not None and response.status_ok()
        return redirect("/?logout=" + ("ok" if ok else "failed"), code=303)

    def slo_soap():
        """Back-channel logout: Sésame's signed LogoutRequest in a SOAP envelope, answered in one.

        pysaml2's own SOAP helpers re-serialise the message with ElementTree, which
        renames namespace prefixes and so breaks an exclusive-c14n signature made by
        any other software; the envelope is therefore opened and closed here with
        lxml, and the message handed to pysaml2 exactly as it was signed."""
        try:
            envelope = etree.fromstring(request.get_data(), parser=SAFE_PARSER)
            (message,) = envelope.find(f"{{{SOAP_ENV}}}Body")
        except (etree.XMLSyntaxError, TypeError, ValueError):
            abort(400)
        encoded = base64.b64encode(etree.tostring(message)).decode()
        logout_request = client.parse_logout_request(encoded, BINDING_HTTP_POST)
        name_id = logout_request.message.name_id
        with lock:
            known = str(name_id.text) in active
            active.discard(str(name_id.text))
        if known and client.local_logout(name_id):
            status = success_status_factory()
        else:
            status = status_message_factory("Wrong user", STATUS_UNKNOWN_PRINCIPAL)
        answer = client.create_logout_response(logout_request.message, [BINDING_SOAP], status, sign=True,
                                               sign_alg=RSA_SHA256, digest_alg=SHA256)
        out = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap-env": SOAP_ENV})
        etree.SubElement(out, f"{{{SOAP_ENV}}}Body").append(etree.fromstring(str(answer).encode()))
        return etree.tostring(out, xml_declaration=True, encoding="UTF-8"), 200, {"Content-Type": "text/xml"}

    def end_session(message: str, binding: str, **args):
        """End the session of the NameID Sésame names (whatever browser holds it) and
        answer with a signed LogoutResponse; "Wrong user" when none is logged in here."""
        name_id = client.parse_logout_request(message, binding, **args).message.name_id
        with lock:
            known = str(name_id.text) in active
            active.discard(str(name_id.text))
        return client.handle_logout_request(message, name_id if known else None, binding, sign=True,
                                            sign_alg=RSA_SHA256, digest_alg=SHA256, **args)

    return current_user
