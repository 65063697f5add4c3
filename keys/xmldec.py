"""Decryption of an ``EncryptedAssertion`` (or any ``EncryptedData`` of ``Type``
Element) addressed to us: the other half of ``keys.xmlenc``.

SAML core §2.3.4 and §6; W3C XML Encryption Syntax and Processing 1.1 (§3
syntax, §5 algorithms).  In-process with ``cryptography``: no process is
forked per message, and the two steps are done by hand rather than by
libxmlsec so that the algorithm whitelist below is the only one that applies
(libxmlsec would follow whatever the message names, RSA v1.5 and AES-CBC
included):

1. the session key, from the ``xenc:EncryptedKey`` in the ``EncryptedData``'s
   ``ds:KeyInfo`` (or a sibling ``xenc:EncryptedKey`` inside the wrapper,
   SAML core §6.2), RSA-OAEP with our private key.  Key transports accepted:
   ``rsa-oaep-mgf1p`` (SHA-1 inside OAEP, what most SAML stacks send) and
   XML Encryption 1.1 ``rsa-oaep`` with its ``DigestMethod`` and ``MGF``
   (SHA-256 and up; what the eIDAS crypto requirements recommend).  RSA
   PKCS#1 v1.5 is refused: Bleichenbacher's attack applies to it.
2. the element, AES-GCM (128 or 256 bits): ``CipherValue`` is the 12-byte IV,
   the ciphertext and the 16-byte tag (XML Encryption 1.1 §5.2.4).  AES-CBC is
   refused: it is malleable and a recipient that tells a padding error from
   another is a decryption oracle (Jager & Somorovsky 2011); eIDAS requires GCM.

Every failure raises ``DecryptionError`` with one ``code``: a caller cannot
tell a wrong key from a tampered ciphertext (no oracle either way).  The
returned bytes are the plaintext element as the sender serialized it: the
caller parses it with ``keys.safexml`` (through ``verify_xml``) and reads only
what its own signature covers.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from keys.algorithms import DSIG_NS
from keys.xmlenc import AES128_GCM, AES256_GCM, RSA_OAEP_MGF1P, XENC_NS

XENC11_NS: Final = "http://www.w3.org/2009/xmlenc11#"
RSA_OAEP: Final = XENC11_NS + "rsa-oaep"
ELEMENT_TYPE: Final = XENC_NS + "Element"
# MGF1 with SHA-1 is what XML Encryption 1.1 assumes when ``xenc11:MGF`` is absent.
_MGF: Final = {XENC11_NS + "mgf1sha1": hashes.SHA1, XENC11_NS + "mgf1sha256": hashes.SHA256,
               XENC11_NS + "mgf1sha384": hashes.SHA384, XENC11_NS + "mgf1sha512": hashes.SHA512}
_DIGESTS: Final = {"http://www.w3.org/2000/09/xmldsig#sha1": hashes.SHA1,
                   "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256,
                   "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
                   "http://www.w3.org/2001/04/xmlenc#sha512": hashes.SHA512}
_DATA: Final = {AES128_GCM: 16, AES256_GCM: 32}   # algorithm -> key bytes
KEY_TRANSPORTS: Final = frozenset({RSA_OAEP_MGF1P, RSA_OAEP})
DATA_ALGORITHMS: Final = frozenset(_DATA)
MIN_RSA_BITS: Final = 2048
MAX_CIPHERTEXT: Final = 1_000_000   # bytes: an assertion is far smaller

_X = "{%s}" % XENC_NS
_X11 = "{%s}" % XENC11_NS
_DS = "{%s}" % DSIG_NS


class DecryptionError(Exception):
    """An encrypted element could not be decrypted with our key (``reason`` for logs only)."""

    code = "decryption_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_decryption_key(key_pem: bytes) -> rsa.RSAPrivateKey:
    """Our RSA private key (PEM, unencrypted), at least ``MIN_RSA_BITS``; ``ValueError`` otherwise."""
    key = serialization.load_pem_private_key(bytes(key_pem), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the decryption key must be an RSA key (RSA-OAEP key transport)")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the decryption key is shorter than {MIN_RSA_BITS} bits")
    return key


def load_decryption_key_file(path: Path | str) -> rsa.RSAPrivateKey:
    return load_decryption_key(Path(path).read_bytes())


def decrypt_element(wrapper: etree._Element, key: rsa.RSAPrivateKey) -> bytes:
    """The plaintext of ``wrapper`` (a ``saml:EncryptedAssertion`` holding one
    ``xenc:EncryptedData``, or the ``EncryptedData`` itself), decrypted with ``key``.

    Raises ``DecryptionError``: shape or algorithm refused, no key transport we
    can open, or the ciphertext does not authenticate.
    """
    if wrapper.tag == _X + "EncryptedData":
        data, siblings = wrapper, []
    else:
        datas = [c for c in wrapper if c.tag == _X + "EncryptedData"]
        if len(datas) != 1:
            raise DecryptionError(f"expected one EncryptedData, found {len(datas)}")
        data, siblings = datas[0], [c for c in wrapper if c.tag == _X + "EncryptedKey"]
    if data.get("Type") not in (None, ELEMENT_TYPE):
        raise DecryptionError("EncryptedData is not of Type Element")
    method = _method(data, "EncryptedData")
    if method not in _DATA:
        raise DecryptionError(f"data encryption {method[:80]!r} refused (AES-GCM only)")
    ciphertext = _cipher_value(data)
    key_info = data.find(_DS + "KeyInfo")
    encrypted_keys = (list(key_info.iter(_X + "EncryptedKey")) if key_info is not None else []) + siblings
    if not encrypted_keys:
        raise DecryptionError("no EncryptedKey")
    session_key = None
    for encrypted_key in encrypted_keys[:4]:  # one per recipient; more is not a SAML message
        session_key = _open_session_key(encrypted_key, key)
        if session_key is not None:
            break
    if session_key is None or len(session_key) != _DATA[method]:
        raise DecryptionError("no EncryptedKey opens with our key")
    if len(ciphertext) < 12 + 16:
        raise DecryptionError("ciphertext too short for AES-GCM")
    try:
        return AESGCM(session_key).decrypt(ciphertext[:12], ciphertext[12:], None)
    except InvalidTag:
        raise DecryptionError("ciphertext does not authenticate") from None


def _method(element: etree._Element, where: str) -> str:
    found = element.find(_X + "EncryptionMethod")
    if found is None or not found.get("Algorithm"):
        raise DecryptionError(f"{where} names no EncryptionMethod")
    return found.get("Algorithm")


def _cipher_value(element: etree._Element) -> bytes:
    value = element.find(f"{_X}CipherData/{_X}CipherValue")
    if value is None or not (value.text or "").strip():
        raise DecryptionError("no CipherValue (CipherReference is not followed)")
    text = "".join(value.text.split())
    if len(text) > MAX_CIPHERTEXT * 4 // 3 + 4:
        raise DecryptionError("ciphertext too large")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("CipherValue is not base64") from None


def _open_session_key(encrypted_key: etree._Element, key: rsa.RSAPrivateKey) -> bytes | None:
    """The session key, or None when this ``EncryptedKey`` is not ours (or not acceptable)."""
    method_element = encrypted_key.find(_X + "EncryptionMethod")
    transport = method_element.get("Algorithm") if method_element is not None else None
    if transport not in KEY_TRANSPORTS:
        return None
    digest_uri = None
    digest = method_element.find(_DS + "DigestMethod")
    if digest is not None:
        digest_uri = digest.get("Algorithm")
    if transport == RSA_OAEP_MGF1P:
        # rsa-oaep-mgf1p: MGF1 with SHA-1 always; the OAEP digest SHA-1 unless named.
        mgf, algorithm = hashes.SHA1, _DIGESTS.get(digest_uri or "http://www.w3.org/2000/09/xmldsig#sha1")
    else:
        mgf_element = method_element.find(_X11 + "MGF")
        mgf = _MGF.get(mgf_element.get("Algorithm")) if mgf_element is not None else hashes.SHA1
        algorithm = _DIGESTS.get(digest_uri or "http://www.w3.org/2000/09/xmldsig#sha1")
    if mgf is None or algorithm is None:
        return None
    label = None
    params = method_element.find(_X + "OAEPparams")
    try:
        if params is not None and (params.text or "").strip():
            label = base64.b64decode("".join(params.text.split()), validate=True)
        wrapped = _cipher_value(encrypted_key)
        return key.decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(mgf()), algorithm=algorithm(), label=label))
    except (ValueError, DecryptionError, binascii.Error):
        return None
