"""Sésame's own keys and in-process XML / redirect signatures.

No process is forked per message: signing and verification run in-process
with python-xmlsec (XML-DSig) and ``cryptography`` (HTTP-Redirect binding).
Framework-free: no Flask, no pysaml2 import.
"""

from keys.algorithms import (
    ECDSA_SHA256,
    ECDSA_SHA384,
    ECDSA_SHA512,
    EXC_C14N,
    RSA_SHA256,
    RSA_SHA384,
    RSA_SHA512,
    SAML_ISSUER,
    SHA256,
)
from keys.errors import (
    InvalidSignature,
    MissingSignature,
    SignatureError,
    UnsafeSignature,
    UnsafeXml,
)
from keys.generate import ensure_key_pair, generate_key_pair
from keys.redirect import sign_query, verify_query
from keys.safexml import parse_safe_xml
from keys.signer import FileSigner, Signer
from keys.xmldsig import verify_xml

__all__ = [
    "ECDSA_SHA256",
    "ECDSA_SHA384",
    "ECDSA_SHA512",
    "EXC_C14N",
    "RSA_SHA256",
    "RSA_SHA384",
    "RSA_SHA512",
    "SAML_ISSUER",
    "SHA256",
    "FileSigner",
    "InvalidSignature",
    "MissingSignature",
    "SignatureError",
    "Signer",
    "UnsafeSignature",
    "UnsafeXml",
    "ensure_key_pair",
    "generate_key_pair",
    "parse_safe_xml",
    "sign_query",
    "verify_query",
    "verify_xml",
]
