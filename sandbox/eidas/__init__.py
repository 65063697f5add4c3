"""An eIDAS node sandbox: a real SAML identity provider on localhost speaking
the eIDAS profile, for the demo and the tests (never in production).

* ``/metadata``: its identity-provider metadata (signing certificate);
* ``POST /sso``: an eIDAS ``AuthnRequest`` (HTTP-POST binding) with the
  citizen's ``country`` beside it.  The service provider must be registered
  (``sp`` or ``sp_from_metadata``), the request signed by it (checked with
  ``keys.verify_xml``), addressed to this node, its ``AssertionConsumerServiceURL``
  registered, the mandatory natural-person attributes requested.  The page
  lists the sandbox's people of that country and the three levels, the one
  requested pre-selected;
* ``POST /sso/login``: the answer, auto-posted to the service provider: a
  ``Response`` signed (ECDSA P-256, SHA-256: the eIDAS crypto requirements),
  its assertion signed and then encrypted to the SP's encryption certificate
  (AES-256-GCM, RSA-OAEP) with ``keys.encrypt_element``; "Annuler" answers
  ``RequestDenied``.

Its keys are made in memory at start (a temporary folder for ``FileSigner``,
removed at exit): never in git.  Per test, ``state(app).misbehave`` holds
switches (``MISBEHAVIOURS``) that make it answer as a broken or hostile node.
"""
from __future__ import annotations

import atexit
import base64
import copy
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from flask import Blueprint, Flask, abort, current_app, render_template, request
from lxml import etree
from werkzeug.serving import make_server

from keys import (AES256_GCM, RSA_OAEP_MGF1P, FileSigner, SignatureError, encrypt_element, generate_key_pair,
                  parse_safe_xml, verify_xml)
from sandbox.eidas.identities import IDENTITIES

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EIDAS_NS = "http://eidas.europa.eu/saml-extensions"
NATURAL = "http://eidas.europa.eu/attributes/naturalperson"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
LOA = "http://eidas.europa.eu/LoA/"
LEVELS = ("low", "substantial", "high")
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
_S, _P, _M, _DS = "{%s}" % SAML_NS, "{%s}" % SAMLP_NS, "{%s}" % MD_NS, "{%s}" % DS_NS
ATTRIBUTES = {  # friendly name, URI, xsi:type of the value (Attribute Profile §2.2)
    "PersonIdentifier": ("eidas-natural:PersonIdentifierType", "identifier"),
    "CurrentFamilyName": ("eidas-natural:CurrentFamilyNameType", "family_name"),
    "CurrentGivenName": ("eidas-natural:CurrentGivenNameType", "given_name"),
    "DateOfBirth": ("eidas-natural:DateOfBirthType", "birth_date"),
}
MANDATORY = tuple(f"{NATURAL}/{name}" for name in ATTRIBUTES)
MISBEHAVIOURS = frozenset({
    "bad_signature",        # the response signed by another key
    "unsigned",             # no signature on the response
    "bad_assertion_signature",  # the assertion inside signed by another key
    "wrapped_signature",    # XSW: an evil assertion carrying the original's signature, the original inside
    "wrong_audience", "wrong_destination", "wrong_recipient",
    "expired",              # conditions and issue instant ten minutes past
    "missing_attribute",    # no DateOfBirth
    "authn_failed",         # an error status: authentication failed
    "unsolicited",          # no InResponseTo
    "replay",               # the previous response again, unchanged
    "undecryptable",        # the assertion encrypted to another key
    "not_encrypted",        # the signed assertion in clear
})


def sp(*, entity_id: str, acs_urls, signing_certificate: bytes | Callable[[], bytes],
       encryption_certificate: bytes | Callable[[], bytes]) -> dict:
    """One registered service provider (Sésame's eIDAS key); certificates PEM (or callables)."""
    return {"entity_id": entity_id, "acs_urls": list(acs_urls), "signing": signing_certificate,
            "encryption": encryption_certificate}


def sp_from_metadata(xml: bytes) -> dict:
    """A service provider from its signed SP metadata (checked against the certificate it
    carries: a sandbox trusts on first use, a real node checks it against its trust list)."""
    root = parse_safe_xml(xml)
    certificates = {}
    for descriptor in root.iterfind(f"{_M}SPSSODescriptor/{_M}KeyDescriptor"):
        text = "".join(descriptor.findtext(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate", "").split())
        pem = b"-----BEGIN CERTIFICATE-----\n" + "\n".join(
            text[i:i + 64] for i in range(0, len(text), 64)).encode() + b"\n-----END CERTIFICATE-----\n"
        certificates[descriptor.get("use")] = pem
    verify_xml(xml, certificates=[certificates["signing"]])
    acs = [e.get("Location") for e in root.iterfind(f"{_M}SPSSODescriptor/{_M}AssertionConsumerService")]
    return sp(entity_id=root.get("entityID"), acs_urls=acs, signing_certificate=certificates["signing"],
              encryption_certificate=certificates["encryption"])


@dataclass
class SandboxState:
    base_url: str
    signer: FileSigner
    other_signer: FileSigner            # "another key", for the bad signatures
    other_encryption: bytes             # a certificate that is not the SP's, for "undecryptable"
    sps: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)
    misbehave: set = field(default_factory=set)
    clock: Callable[[], float] = time.time
    pending: dict = field(default_factory=dict)
    last_response: dict | None = None
    requests: list = field(default_factory=list)   # the requests received, parsed (tests read them)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    @property
    def certificate_pem(self) -> bytes:
        return self.signer.certificate_pem

    def reset(self) -> None:
        with self.lock:
            self.misbehave.clear()
            self.pending.clear()
            self.requests.clear()
            self.last_response = None
            self.clock = time.time


def state(app: Flask) -> SandboxState:
    return app.extensions["eidas_sandbox"]


def _signer(folder: Path, name: str) -> FileSigner:
    key_pem, cert_pem = generate_key_pair(common_name=f"eIDAS sandbox {name}", key_type="ec")
    (folder / f"{name}.key").write_bytes(key_pem)
    (folder / f"{name}.crt").write_bytes(cert_pem)
    return FileSigner(folder / f"{name}.key", folder / f"{name}.crt")


def create_sandbox_app(base_url: str, *, sps: Mapping[str, dict] | None = None,
                       identities: Mapping[str, dict] | None = None) -> Flask:
    """The sandbox node at ``base_url`` (its SSO service is ``<base_url>/sso``)."""
    folder = Path(tempfile.mkdtemp(prefix="eidas-sandbox-"))
    atexit.register(shutil.rmtree, folder, True)
    _, other_encryption = generate_key_pair(common_name="not the SP", key_size=2048)
    app = Flask("eidas_sandbox", template_folder=str(Path(__file__).with_name("templates")))
    app.extensions["eidas_sandbox"] = SandboxState(
        base_url=base_url.rstrip("/"), signer=_signer(folder, "node"), other_signer=_signer(folder, "other"),
        other_encryption=other_encryption, sps=dict(sps or {}), identities=dict(identities or IDENTITIES))
    bp = Blueprint("eidas", __name__)

    @bp.get("/metadata")
    def metadata():
        st = _st()
        root = etree.Element(_M + "EntityDescriptor", nsmap={"md": MD_NS, "ds": DS_NS}, entityID=st.entity_id)
        idp = etree.SubElement(root, _M + "IDPSSODescriptor", protocolSupportEnumeration=SAMLP_NS,
                               WantAuthnRequestsSigned="true")
        key = etree.SubElement(etree.SubElement(idp, _M + "KeyDescriptor", use="signing"), _DS + "KeyInfo")
        etree.SubElement(etree.SubElement(key, _DS + "X509Data"), _DS + "X509Certificate").text = \
            st.signer.certificate_b64()
        etree.SubElement(idp, _M + "SingleSignOnService", Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                         Location=f"{st.base_url}/sso")
        return current_app.response_class(etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                                          mimetype="application/samlmetadata+xml")

    @bp.post("/sso")
    def sso():
        st = _st()
        try:
            parsed = _read_request(st, request.form.get("SAMLRequest", ""))
        except ValueError as exc:
            return render_template("error.html", message=f"Requête refusée : {exc}"), 400
        country = request.form.get("country", "")
        people = {pid: p for pid, p in st.identities.items() if not country or p["country"] == country}
        txn = secrets.token_urlsafe(16)
        with st.lock:
            st.requests.append({**parsed, "country": country})
            st.pending[txn] = {**parsed, "relay_state": request.form.get("RelayState"), "country": country}
        return render_template("login.html", txn=txn, people=people, country=country, levels=LEVELS,
                               requested=parsed["loa"], sp=parsed["issuer"])

    @bp.post("/sso/login")
    def login():
        st = _st()
        with st.lock:
            pending = st.pending.pop(request.form.get("txn", ""), None)
        if pending is None:
            abort(400)
        if request.form.get("decision") != "login" or "authn_failed" in st.misbehave:
            status = "RequestDenied" if request.form.get("decision") != "login" else "AuthnFailed"
            xml = _error_response(st, pending, status)
        else:
            person = st.identities.get(request.form.get("person", ""))
            level = request.form.get("level", "")
            if person is None or level not in LEVELS:
                abort(400)
            xml = _response(st, pending, person, level)
        fields = {"SAMLResponse": base64.b64encode(xml).decode(), "RelayState": pending["relay_state"]}
        with st.lock:
            if "replay" in st.misbehave and st.last_response is not None:
                fields["SAMLResponse"] = st.last_response["SAMLResponse"]
            st.last_response = fields
        return render_template("post.html", action=pending["acs_url"], fields=fields)

    app.register_blueprint(bp)
    return app


def _st() -> SandboxState:
    return current_app.extensions["eidas_sandbox"]


def _certificate(value) -> bytes:
    return value() if callable(value) else value


def _read_request(st: SandboxState, message: str) -> dict:
    """The checked AuthnRequest: its signature, addressee, consumer URL and requested attributes."""
    try:
        xml = base64.b64decode(message, validate=True)
        root = parse_safe_xml(xml)
    except (ValueError, SignatureError):
        raise ValueError("SAMLRequest illisible") from None
    issuer = root.findtext(_S + "Issuer", "").strip()
    registered = st.sps.get(issuer)
    if registered is None:
        raise ValueError(f"fournisseur de services inconnu {issuer[:80]!r}")
    try:
        root = verify_xml(xml, certificates=[_certificate(registered["signing"])])
    except SignatureError as exc:
        raise ValueError(f"signature ({exc.code})") from None
    if root.tag != _P + "AuthnRequest" or root.get("Destination") != f"{st.base_url}/sso":
        raise ValueError("pas une AuthnRequest pour ce nœud")
    acs = root.get("AssertionConsumerServiceURL")
    if acs not in registered["acs_urls"]:
        raise ValueError("AssertionConsumerServiceURL non enregistrée")
    asked = {e.get("Name") for e in root.iterfind(f"{_P}Extensions/{{{EIDAS_NS}}}RequestedAttributes/"
                                                  f"{{{EIDAS_NS}}}RequestedAttribute")}
    if not set(MANDATORY) <= asked:
        raise ValueError("attributs obligatoires non demandés")
    sp_type = root.findtext(f"{_P}Extensions/{{{EIDAS_NS}}}SPType", "")
    context = root.find(f"{_P}RequestedAuthnContext")
    class_ref = context.findtext(_S + "AuthnContextClassRef", "") if context is not None else ""
    if context is None or context.get("Comparison") != "minimum" or not class_ref.startswith(LOA):
        raise ValueError("RequestedAuthnContext eIDAS (minimum) attendu")
    return {"id": root.get("ID"), "issuer": issuer, "acs_url": acs, "loa": class_ref[len(LOA):],
            "sp_type": sp_type, "force_authn": root.get("ForceAuthn") == "true", "attributes": sorted(asked)}


def _instant(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _response_root(st: SandboxState, pending: dict, now: float) -> etree._Element:
    bad = st.misbehave
    root = etree.Element(_P + "Response", nsmap={"saml2p": SAMLP_NS, "saml2": SAML_NS})
    root.set("ID", "_" + secrets.token_hex(16))
    root.set("Version", "2.0")
    root.set("IssueInstant", _instant(now))
    root.set("Destination", "https://elsewhere.example/acs" if "wrong_destination" in bad else pending["acs_url"])
    if "unsolicited" not in bad:
        root.set("InResponseTo", pending["id"])
    etree.SubElement(root, _S + "Issuer").text = st.entity_id
    return root


def _status(root: etree._Element, top: str, second: str | None = None) -> None:
    status = etree.SubElement(etree.SubElement(root, _P + "Status"), _P + "StatusCode", Value=STATUS + top)
    if second:
        etree.SubElement(status, _P + "StatusCode", Value=STATUS + second)


def _sign_response(st: SandboxState, root: etree._Element) -> bytes:
    if "unsigned" not in st.misbehave:
        (st.other_signer if "bad_signature" in st.misbehave else st.signer).sign_element(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _error_response(st: SandboxState, pending: dict, second: str) -> bytes:
    root = _response_root(st, pending, st.clock())
    _status(root, "Responder", second)
    return _sign_response(st, root)


def _response(st: SandboxState, pending: dict, person: dict, level: str) -> bytes:
    bad, now = st.misbehave, st.clock()
    if "expired" in bad:
        now -= 900
    registered = st.sps[pending["issuer"]]
    root = _response_root(st, pending, now)
    _status(root, "Success")
    assertion = etree.SubElement(root, _S + "Assertion", nsmap={"xsi": XSI_NS, "eidas-natural": NATURAL})
    assertion_id = "_" + secrets.token_hex(16)
    assertion.set("ID", assertion_id)
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", _instant(now))
    etree.SubElement(assertion, _S + "Issuer").text = st.entity_id
    subject = etree.SubElement(assertion, _S + "Subject")
    etree.SubElement(subject, _S + "NameID", Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                     NameQualifier=st.entity_id).text = person["identifier"]
    confirmation = etree.SubElement(subject, _S + "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
    etree.SubElement(confirmation, _S + "SubjectConfirmationData", InResponseTo=pending["id"],
                     NotOnOrAfter=_instant(now + 300),
                     Recipient="https://elsewhere.example/acs" if "wrong_recipient" in bad else pending["acs_url"])
    conditions = etree.SubElement(assertion, _S + "Conditions", NotBefore=_instant(now - 5),
                                  NotOnOrAfter=_instant(now + 300))
    etree.SubElement(etree.SubElement(conditions, _S + "AudienceRestriction"), _S + "Audience").text = (
        "https://someone-else.example/metadata" if "wrong_audience" in bad else pending["issuer"])
    statement = etree.SubElement(assertion, _S + "AuthnStatement", AuthnInstant=_instant(now))
    etree.SubElement(etree.SubElement(statement, _S + "AuthnContext"), _S + "AuthnContextClassRef").text = \
        LOA + level
    attributes = etree.SubElement(assertion, _S + "AttributeStatement")
    for name, (xsi_type, source) in ATTRIBUTES.items():
        if name == "DateOfBirth" and "missing_attribute" in bad:
            continue
        attribute = etree.SubElement(attributes, _S + "Attribute", Name=f"{NATURAL}/{name}", FriendlyName=name,
                                     NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri")
        value = etree.SubElement(attribute, _S + "AttributeValue")
        value.set("{%s}type" % XSI_NS, xsi_type)
        value.text = person[source]
    (st.other_signer if "bad_assertion_signature" in bad else st.signer).sign_element(assertion)
    if "wrapped_signature" in bad:
        assertion = _wrap(assertion)
    if "not_encrypted" in bad:
        return _sign_response(st, root)
    document = etree.tostring(root)
    recipient = st.other_encryption if "undecryptable" in bad else _certificate(registered["encryption"])
    encrypted = encrypt_element(document=document, element_id=assertion.get("ID"), certificate_pem=recipient,
                                data_algorithm=AES256_GCM, key_transport=RSA_OAEP_MGF1P, recipient=pending["issuer"])
    return _sign_response(st, etree.fromstring(encrypted))


def _wrap(signed: etree._Element) -> etree._Element:
    """Signature wrapping (XSW, Somorovsky et al. 2012): an evil assertion carrying
    the original's signature, another person's identifier in it, and the signed
    original hidden in its ``Advice``, where a naive verifier resolving the
    signature's reference by ID finds it, checks it, and then reads the evil one."""
    evil = copy.deepcopy(signed)
    evil.set("ID", "_" + secrets.token_hex(16))
    for value in evil.iterfind(f"{_S}AttributeStatement/{_S}Attribute/{_S}AttributeValue"):
        if value.getparent().get("FriendlyName") == "PersonIdentifier":
            value.text = value.text.rsplit("/", 1)[0] + "/ATTACKER-0001"
    advice = etree.Element(_S + "Advice")
    advice.append(copy.deepcopy(signed))
    for child in advice[0]:
        if child.tag == _DS + "Signature":
            advice[0].remove(child)   # the original, as signed minus its enveloped signature: digest intact
    evil.find(_S + "Conditions").addnext(advice)
    signed.getparent().replace(signed, evil)
    return evil


def start_sandbox(host: str, port: int, *, base_url: str | None = None,
                  sps: Mapping[str, dict] | None = None) -> tuple[Any, Flask]:
    """Serve the sandbox in a thread (werkzeug); returns ``(server, app)``.
    Stop it with ``server.shutdown(); server.server_close()``."""
    app = create_sandbox_app(base_url or f"http://{host}:{port}", sps=sps)
    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, app
