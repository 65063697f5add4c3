"""Strict verification of enveloped XML signatures on incoming messages.

For SAML messages received over the HTTP-POST binding (SAML bindings §3.5.4)
and signed metadata.  Verification is in-process with python-xmlsec; no
program is run per message.

The accepted shape is deliberately narrow (XML-DSig core §4, SAML core §5.4),
anything else raises ``UnsafeSignature`` before any cryptography runs:

* exactly one ``ds:Signature`` in the whole document, a direct child of the
  root element;
* no two attributes named ``ID`` / ``Id`` / ``id`` (any namespace) share a
  value anywhere in the document — the XML signature wrapping defence — and
  the root element has an ``ID``;
* ``ds:Signature`` holds ``SignedInfo``, ``SignatureValue`` and optionally
  ``KeyInfo`` (ignored), nothing else (no ``ds:Object`` / manifests);
* ``SignedInfo``: ``CanonicalizationMethod`` exclusive c14n *without*
  comments, ``SignatureMethod`` RSA-SHA256/384/512 or ECDSA-SHA256/384/512,
  exactly one ``Reference`` whose ``URI`` is ``"#"`` + the root's ``ID``;
* that reference's transforms: enveloped-signature, then optionally exclusive
  c14n (with or without ``InclusiveNamespaces``); ``DigestMethod`` SHA-256,
  SHA-384 or SHA-512.

The verification key comes only from the ``certificates`` given by the
caller (the portal's metadata), never from the message's ``KeyInfo``.  The
certificates' validity dates are not evaluated (metadata trust model,
SAML V2.0 Metadata Interoperability Profile §2.4.1).  Comments are dropped at
parse time (see ``keys.safexml``), so the returned tree reads exactly what
was signed.
"""

from __future__ import annotations

import functools

import xmlsec
from lxml import etree

from keys.algorithms import (
    DIGEST_ALGORITHMS,
    DSIG_NS,
    ENVELOPED,
    EXC_C14N,
    SIGNATURE_ALGORITHMS,
)
from keys.errors import InvalidSignature, MissingSignature, UnsafeSignature
from keys.safexml import DEFAULT_MAX_BYTES, parse_safe_xml

__all__ = ["parse_safe_xml", "verify_xml"]

_DS = "{%s}" % DSIG_NS
_EC_NS = "{%s}" % EXC_C14N
_ID_NAMES = frozenset({"ID", "Id", "id"})

# Also enforced inside xmlsec: a second, independent line of defence.
_REFERENCE_TRANSFORMS = (
    xmlsec.Transform.ENVELOPED,
    xmlsec.Transform.EXCL_C14N,
    xmlsec.Transform.SHA256,
    xmlsec.Transform.SHA384,
    xmlsec.Transform.SHA512,
)
_SIGNATURE_TRANSFORMS = (
    xmlsec.Transform.EXCL_C14N,
    xmlsec.Transform.RSA_SHA256,
    xmlsec.Transform.RSA_SHA384,
    xmlsec.Transform.RSA_SHA512,
    xmlsec.Transform.ECDSA_SHA256,
    xmlsec.Transform.ECDSA_SHA384,
    xmlsec.Transform.ECDSA_SHA512,
)


def verify_xml(
    xml: bytes,
    *,
    certificates: list[bytes],
    require_signature: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> etree._Element:
    """Verify the enveloped signature of a whole document; return its root.

    ``certificates`` are PEM X.509 certificates; the signature must verify
    with one of them.  With ``require_signature=False`` an unsigned document
    is returned as parsed, but a signature, when present, must still verify.

    Raises ``UnsafeXml`` (hostile or malformed document), ``MissingSignature``,
    ``UnsafeSignature`` (shape refused) or ``InvalidSignature`` (does not
    verify with any of the certificates).
    """
    root = parse_safe_xml(xml, max_bytes=max_bytes)
    signatures = list(root.iter(_DS + "Signature"))
    if not signatures:
        if require_signature:
            raise MissingSignature("message is not signed")
        return root
    if len(signatures) > 1:
        raise UnsafeSignature("more than one signature in the document")
    signature = signatures[0]
    if signature.getparent() is not root:
        raise UnsafeSignature("signature is not a direct child of the root element")
    root_id = _check_unique_ids(root)
    _check_signature_shape(signature, root_id=root_id)
    if not certificates:
        raise InvalidSignature("no trusted certificate to verify with")
    for certificate in certificates:
        if _verifies(root, signature, key=_certificate_key(bytes(certificate))):
            return root
    raise InvalidSignature("signature does not verify with any trusted certificate")


def _check_unique_ids(root: etree._Element) -> str:
    """Refuse duplicate ID-like attribute values; return the root's ``ID``."""
    seen: set[str] = set()
    for element in root.iter(etree.Element):
        for name, value in element.attrib.items():
            if etree.QName(name).localname in _ID_NAMES:
                if value in seen:
                    raise UnsafeSignature("duplicate ID attribute value")
                seen.add(value)
    root_id = root.get("ID")
    if not root_id:
        raise UnsafeSignature("signed root element has no ID attribute")
    return root_id


def _children(element: etree._Element) -> list[etree._Element]:
    """Element children; other nodes (PI) or non-blank text are refused."""
    children = list(element)
    for child in children:
        if not isinstance(child.tag, str):
            raise UnsafeSignature("unexpected node inside the signature")
    texts = [element.text] + [child.tail for child in children]
    if any((text or "").strip() for text in texts):
        raise UnsafeSignature("unexpected text inside the signature")
    return children


def _expect(children: list[etree._Element], tags: list[str], *, where: str) -> None:
    if [child.tag for child in children] != [_DS + tag for tag in tags]:
        raise UnsafeSignature(f"unexpected content in {where}")


def _check_exc_c14n(element: etree._Element, *, where: str) -> None:
    """Exclusive c14n without comments; only ``InclusiveNamespaces`` inside."""
    if element.get("Algorithm") != EXC_C14N:
        raise UnsafeSignature(f"{where} is not exclusive c14n without comments")
    children = _children(element)
    if len(children) > 1 or any(c.tag != _EC_NS + "InclusiveNamespaces" for c in children):
        raise UnsafeSignature(f"unexpected content in {where}")
    for child in children:
        if _children(child) or set(child.attrib) != {"PrefixList"}:
            raise UnsafeSignature(f"unexpected content in {where}")


def _check_signature_shape(signature: etree._Element, *, root_id: str) -> None:
    """Apply the strict rules listed in the module docstring."""
    children = _children(signature)
    tags = ["SignedInfo", "SignatureValue"] + (["KeyInfo"] if len(children) == 3 else [])
    _expect(children, tags, where="Signature")
    signed_info = children[0]
    si_children = _children(signed_info)
    _expect(
        si_children,
        ["CanonicalizationMethod", "SignatureMethod", "Reference"],
        where="SignedInfo (exactly one Reference)",
    )
    c14n, method, reference = si_children
    _check_exc_c14n(c14n, where="CanonicalizationMethod")
    if method.get("Algorithm") not in SIGNATURE_ALGORITHMS or _children(method):
        raise UnsafeSignature("signature algorithm refused")
    if reference.get("URI") != "#" + root_id:
        raise UnsafeSignature("reference does not point at the root element")
    ref_children = _children(reference)
    _expect(ref_children, ["Transforms", "DigestMethod", "DigestValue"], where="Reference")
    transforms, digest_method, _ = ref_children
    steps = _children(transforms)
    if not steps or any(step.tag != _DS + "Transform" for step in steps) or len(steps) > 2:
        raise UnsafeSignature("transforms refused")
    if steps[0].get("Algorithm") != ENVELOPED or _children(steps[0]):
        raise UnsafeSignature("first transform is not enveloped-signature")
    if len(steps) == 2:
        _check_exc_c14n(steps[1], where="Transform")
    if digest_method.get("Algorithm") not in DIGEST_ALGORITHMS or _children(digest_method):
        raise UnsafeSignature("digest algorithm refused")


@functools.lru_cache(maxsize=256)
def _certificate_key(certificate_pem: bytes) -> xmlsec.Key | None:
    """Public key of a PEM certificate, ``None`` if unreadable.

    Cached: metadata certificates repeat on every message.  Sharing a Key
    between threads is safe, each context keeps its own duplicate
    (python-xmlsec ``SignatureContext.key`` calls ``xmlSecKeyDuplicate``).
    """
    try:
        return xmlsec.Key.from_memory(certificate_pem, xmlsec.KeyFormat.CERT_PEM, None)
    except xmlsec.Error:
        return None


def _verifies(root: etree._Element, signature: etree._Element, *, key: xmlsec.Key | None) -> bool:
    """One cryptographic attempt; the shape has already been checked."""
    if key is None:
        return False
    ctx = xmlsec.SignatureContext()
    ctx.key = key  # with a key set, xmlsec never looks at ds:KeyInfo
    for transform in _REFERENCE_TRANSFORMS:
        ctx.enable_reference_transform(transform)
    for transform in _SIGNATURE_TRANSFORMS:
        ctx.enable_signature_transform(transform)
    ctx.register_id(root, "ID")
    try:
        ctx.verify(signature)
    except xmlsec.Error:  # VerificationError is a subclass
        return False
    return True
