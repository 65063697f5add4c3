"""keys.xmldsig / keys.safexml: strict verification of incoming signed XML.

Every refused shape below is *correctly signed* (by python-xmlsec or by the
xmlsec1 program) unless stated otherwise, so the refusal can only come from
the strict rules, not from a broken signature.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xmlsec
from lxml import etree
from saml2 import saml, samlp
from saml2.sigver import CryptoBackendXmlSec1, pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

from keys import (
    FileSigner,
    InvalidSignature,
    MissingSignature,
    SignatureError,
    UnsafeSignature,
    UnsafeXml,
    generate_key_pair,
    parse_safe_xml,
    verify_xml,
)
from keys import xmldsig

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
RESPONSE_NODE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
XMLSEC1 = shutil.which("xmlsec1")
T = xmlsec.Transform


class Pair:
    """A key pair on disk plus its PEM bytes."""

    def __init__(self, directory: Path, *, key_size: int = 2048) -> None:
        self.key_pem, self.cert_pem = generate_key_pair(common_name=directory.name, key_size=key_size)
        self.key_path = directory / "signing.key"
        self.cert_path = directory / "signing.crt"
        self.key_path.write_bytes(self.key_pem)
        self.cert_path.write_bytes(self.cert_pem)
        self.signer = FileSigner(self.key_path, self.cert_path)


@pytest.fixture(scope="module")
def portal(tmp_path_factory) -> Pair:
    """The service provider whose metadata certificate we trust."""
    return Pair(tmp_path_factory.mktemp("portal"))


@pytest.fixture(scope="module")
def attacker(tmp_path_factory) -> Pair:
    return Pair(tmp_path_factory.mktemp("attacker"))


def _issuer() -> saml.Issuer:
    return saml.Issuer(text="https://sp.example.test", format=saml.NAMEID_FORMAT_ENTITY)


def response(*, response_id: str = "_r1", assertion_id: str = "_a1", name_id: str = "alice", signature=None) -> bytes:
    """A real samlp:Response with a saml:Assertion, built by pysaml2."""
    assertion = saml.Assertion(
        id=assertion_id, version="2.0", issue_instant="2024-05-01T10:00:00Z", issuer=_issuer(),
        subject=saml.Subject(name_id=saml.NameID(text=name_id)),
    )
    return samlp.Response(
        id=response_id, version="2.0", issue_instant="2024-05-01T10:00:00Z", issuer=_issuer(),
        status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)),
        assertion=assertion, signature=signature,
    ).to_string()


def xmlsec_sign(
    xml: bytes,
    pair: Pair,
    *,
    ref_id: str = "_r1",
    uri: str | None = None,
    c14n=T.EXCL_C14N,
    method=T.RSA_SHA256,
    digest=T.SHA256,
    transforms=(T.ENVELOPED, T.EXCL_C14N),
    extra_reference: str | None = None,
) -> bytes:
    """Sign with python-xmlsec using any algorithms (to build refused shapes)."""
    root = etree.fromstring(xml)
    target = root.xpath("//*[@ID=$v]", v=ref_id)[0]
    signature = xmlsec.template.create(target, c14n, method, ns="ds")
    target.insert(1, signature)  # after saml:Issuer
    reference = xmlsec.template.add_reference(signature, digest, uri="#" + ref_id if uri is None else uri)
    for transform in transforms:
        xmlsec.template.add_transform(reference, transform)
    if extra_reference:
        second = xmlsec.template.add_reference(signature, T.SHA256, uri="#" + extra_reference)
        xmlsec.template.add_transform(second, T.EXCL_C14N)
    xmlsec.template.x509_data_add_certificate(
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    )
    key = xmlsec.Key.from_memory(pair.key_pem, xmlsec.KeyFormat.PEM, None)
    key.load_cert_from_memory(pair.cert_pem, xmlsec.KeyFormat.CERT_PEM)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    for element in root.xpath("//*[@ID]"):
        ctx.register_id(element, "ID")
    ctx.sign(signature)
    return etree.tostring(root)


def xmlsec1_program_sign(tmp_path: Path, pair: Pair, *, sign_alg: str, digest_alg: str) -> bytes:
    """Sign with the xmlsec1 program through pysaml2 (what pysaml2 SPs send)."""
    template = pre_signature_part(
        ident="_r1", public_key=pair.signer.certificate_b64(), sign_alg=sign_alg, digest_alg=digest_alg
    )
    backend = CryptoBackendXmlSec1(XMLSEC1)
    signed = backend.sign_statement(response(signature=template), RESPONSE_NODE, str(pair.key_path), "_r1")
    return signed.encode("utf-8")


# -- the happy path ------------------------------------------------------------


def test_verify_returns_the_verified_root(portal):
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    root = verify_xml(signed, certificates=[portal.cert_pem])
    assert root.tag == SAMLP + "Response" and root.get("ID") == "_r1"
    assert root.findtext(f"{SAML}Assertion/{SAML}Subject/{SAML}NameID") == "alice"


def test_any_trusted_certificate_may_verify(portal, attacker):
    # Key rollover: the portal's metadata lists the old and the new certificate.
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    assert verify_xml(signed, certificates=[attacker.cert_pem, portal.cert_pem]) is not None


def test_only_enveloped_transform_is_accepted(portal):
    signed = xmlsec_sign(response(), portal, transforms=(T.ENVELOPED,))
    assert verify_xml(signed, certificates=[portal.cert_pem]) is not None


@pytest.mark.parametrize("method", [T.RSA_SHA384, T.RSA_SHA512])
def test_stronger_rsa_algorithms_are_accepted(portal, method):
    signed = xmlsec_sign(response(), portal, method=method, digest=T.SHA512)
    assert verify_xml(signed, certificates=[portal.cert_pem]) is not None


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 program not installed")
def test_signature_made_by_the_xmlsec1_program_verifies(tmp_path, portal):
    signed = xmlsec1_program_sign(tmp_path, portal, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    assert verify_xml(signed, certificates=[portal.cert_pem]).get("ID") == "_r1"
    with pytest.raises(InvalidSignature):
        verify_xml(signed.replace(b">alice<", b">admin<"), certificates=[portal.cert_pem])


# -- cryptographic failures ----------------------------------------------------------


def test_wrong_certificate_is_invalid(portal, attacker):
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    with pytest.raises(InvalidSignature):
        verify_xml(signed, certificates=[attacker.cert_pem])


def test_tampered_content_is_invalid(portal):
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    tampered = signed.replace(b">alice<", b">admin<")
    assert tampered != signed
    with pytest.raises(InvalidSignature):
        verify_xml(tampered, certificates=[portal.cert_pem])


def test_tampered_signature_value_is_invalid(portal):
    root = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    value = root.find(f".//{DS}SignatureValue")
    value.text = ("B" if value.text[0] == "A" else "A") + value.text[1:]
    with pytest.raises(InvalidSignature):
        verify_xml(etree.tostring(root), certificates=[portal.cert_pem])


def test_no_trusted_certificate_is_invalid(portal):
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    with pytest.raises(InvalidSignature):
        verify_xml(signed, certificates=[])
    with pytest.raises(InvalidSignature):
        verify_xml(signed, certificates=[b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n"])


def test_key_comes_from_metadata_never_from_key_info(portal, attacker):
    # The attacker signs with its own key and ships its own certificate in KeyInfo.
    forged = xmlsec_sign(response(name_id="admin"), attacker)
    assert attacker.signer.certificate_b64() in b"".join(forged.split()).decode()
    with pytest.raises(InvalidSignature):
        verify_xml(forged, certificates=[portal.cert_pem])
    # A genuine signature whose KeyInfo is swapped for the attacker's
    # certificate still verifies: KeyInfo is simply not read.
    root = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    root.find(f".//{DS}X509Certificate").text = attacker.signer.certificate_b64()
    assert verify_xml(etree.tostring(root), certificates=[portal.cert_pem]) is not None


# -- unsigned messages -------------------------------------------------------------


def test_unsigned_message(portal):
    with pytest.raises(MissingSignature):
        verify_xml(response(), certificates=[portal.cert_pem])
    root = verify_xml(response(), certificates=[], require_signature=False)
    assert root.get("ID") == "_r1"


def test_optional_signature_must_still_verify(portal, attacker):
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    with pytest.raises(InvalidSignature):
        verify_xml(signed, certificates=[attacker.cert_pem], require_signature=False)


# -- refused shapes (correctly signed, refused by the rules) ---------------------------


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 program not installed")
def test_sha1_signature_from_the_xmlsec1_program_is_refused(tmp_path, portal):
    signed = xmlsec1_program_sign(tmp_path, portal, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    assert b"rsa-sha1" in signed
    with pytest.raises(UnsafeSignature):
        verify_xml(signed, certificates=[portal.cert_pem])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"method": T.RSA_SHA1}, id="rsa-sha1-signature"),
        pytest.param({"digest": T.SHA1}, id="sha1-digest"),
        pytest.param({"c14n": T.C14N}, id="inclusive-c14n-method"),
        pytest.param({"c14n": T.EXCL_C14N_COMMENTS}, id="exc-c14n-with-comments-method"),
        pytest.param({"transforms": (T.ENVELOPED, T.C14N)}, id="inclusive-c14n-transform"),
        pytest.param({"transforms": (T.EXCL_C14N,)}, id="no-enveloped-transform"),
        pytest.param({"uri": ""}, id="whole-document-reference"),
        pytest.param({"extra_reference": "_a1"}, id="two-references"),
    ],
)
def test_refused_signature_shapes(portal, options):
    signed = xmlsec_sign(response(), portal, **options)
    with pytest.raises(UnsafeSignature) as raised:
        verify_xml(signed, certificates=[portal.cert_pem])
    assert type(raised.value) is UnsafeSignature


def test_xslt_transform_is_refused(portal):
    root = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    transforms = root.find(f".//{DS}Transforms")
    xslt = etree.SubElement(transforms, DS + "Transform", Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116")
    etree.SubElement(xslt, "{http://www.w3.org/1999/XSL/Transform}stylesheet", version="1.0")
    with pytest.raises(UnsafeSignature):
        verify_xml(etree.tostring(root), certificates=[portal.cert_pem])


def test_object_inside_signature_is_refused(portal):
    root = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    etree.SubElement(root.find(DS + "Signature"), DS + "Object").text = "payload"
    with pytest.raises(UnsafeSignature):
        verify_xml(etree.tostring(root), certificates=[portal.cert_pem])


def test_refused_shape_is_also_refused_inside_xmlsec(portal):
    # Second line of defence: the transforms enabled in the xmlsec context.
    root = etree.fromstring(xmlsec_sign(response(), portal, transforms=(T.ENVELOPED, T.C14N)))
    key = xmldsig._certificate_key(portal.cert_pem)
    assert not xmldsig._verifies(root, root.find(DS + "Signature"), key=key)
    root = etree.fromstring(xmlsec_sign(response(), portal))
    assert xmldsig._verifies(root, root.find(DS + "Signature"), key=key)


# -- signature wrapping ------------------------------------------------------------------


def test_wrapping_with_a_duplicated_id_is_refused(portal):
    genuine = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    signature = genuine.find(DS + "Signature")
    genuine.remove(signature)
    evil = etree.fromstring(response(name_id="admin"))  # same ID "_r1" as the genuine one
    evil.insert(1, signature)
    extensions = etree.Element(SAMLP + "Extensions")
    extensions.append(genuine)  # the signed content, hidden where xmlsec would find the ID
    evil.insert(2, extensions)
    with pytest.raises(UnsafeSignature, match="duplicate ID"):
        verify_xml(etree.tostring(evil), certificates=[portal.cert_pem])


def test_duplicated_id_on_any_attribute_name_is_refused(portal):
    root = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    root.find(SAML + "Issuer").set("{http://www.w3.org/XML/1998/namespace}id", "_r1")
    with pytest.raises(UnsafeSignature):
        verify_xml(etree.tostring(root), certificates=[portal.cert_pem])


def test_signature_of_a_nested_assertion_is_refused(portal):
    signed_assertion = portal.signer.sign_xml(response(), reference_id="_a1")
    with pytest.raises(UnsafeSignature, match="direct child"):
        verify_xml(signed_assertion, certificates=[portal.cert_pem])
    # Moving that signature up to the root does not help: it references "#_a1".
    root = etree.fromstring(signed_assertion)
    root.insert(1, root.find(f"{SAML}Assertion/{DS}Signature"))
    with pytest.raises(UnsafeSignature, match="root element"):
        verify_xml(etree.tostring(root), certificates=[portal.cert_pem])


def test_two_signatures_are_refused(portal):
    both = portal.signer.sign_xml(portal.signer.sign_xml(response(), reference_id="_a1"), reference_id="_r1")
    with pytest.raises(UnsafeSignature, match="more than one"):
        verify_xml(both, certificates=[portal.cert_pem])


def test_root_without_id_is_refused(portal):
    root = etree.fromstring(portal.signer.sign_xml(response(), reference_id="_r1"))
    del root.attrib["ID"]
    with pytest.raises(UnsafeSignature):
        verify_xml(etree.tostring(root), certificates=[portal.cert_pem])


def test_comment_cannot_truncate_signed_text(portal):
    signed = portal.signer.sign_xml(response(name_id="bob@example.org.evil.test"), reference_id="_r1")
    injected = signed.replace(b"bob@example.org.evil.test", b"bob@example.org<!---->.evil.test")
    assert injected != signed
    root = verify_xml(injected, certificates=[portal.cert_pem])  # comments are not signed
    assert root.findtext(f".//{SAML}NameID") == "bob@example.org.evil.test"


# -- hostile XML -------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x">&lol4;</samlp:AuthnRequest>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x">&xxe;</samlp:AuthnRequest>"""

PLAIN_DOCTYPE = b"""<!DOCTYPE AuthnRequest>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x"/>"""


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(XXE, id="external-entity"),
        pytest.param(PLAIN_DOCTYPE, id="doctype"),
        pytest.param(XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"),
                     id="utf16-doctype"),
        pytest.param(b"<a><b></a>", id="malformed"),
        pytest.param(b"", id="empty"),
        pytest.param(b"<a>&undeclared;</a>", id="undeclared-entity"),
    ],
)
def test_hostile_xml_is_refused(document, portal):
    with pytest.raises(UnsafeXml):
        parse_safe_xml(document)
    with pytest.raises(SignatureError):  # UnsafeXml is a SignatureError for verify_xml callers
        verify_xml(document, certificates=[portal.cert_pem], require_signature=False)


def test_utf16_doctype_passes_the_byte_scan_but_not_the_parser_check():
    document = PLAIN_DOCTYPE.decode().replace("<!DOCTYPE", '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE')
    encoded = document.encode("utf-16")
    assert b"<!DOCTYPE" not in encoded
    with pytest.raises(UnsafeXml, match="document type"):
        parse_safe_xml(encoded)


def test_oversize_document_is_refused(portal):
    signed = portal.signer.sign_xml(response(), reference_id="_r1")
    with pytest.raises(UnsafeXml, match="larger"):
        parse_safe_xml(signed, max_bytes=len(signed) - 1)
    assert parse_safe_xml(signed, max_bytes=len(signed)).get("ID") == "_r1"
    padded = signed + b" " * (200_001 - len(signed))  # whitespace after the root is legal
    with pytest.raises(UnsafeXml, match="larger"):
        verify_xml(padded, certificates=[portal.cert_pem])
    assert verify_xml(padded, certificates=[portal.cert_pem], max_bytes=len(padded)) is not None


def test_parse_safe_xml_needs_bytes():
    with pytest.raises(TypeError):
        parse_safe_xml("<a/>")  # type: ignore[arg-type]


def test_deeply_nested_document_is_refused():
    depth = 5000
    with pytest.raises(UnsafeXml):
        parse_safe_xml(b"<a>" * depth + b"</a>" * depth, max_bytes=10 * depth)
