"""Sésame's own keys, in-process XML / redirect signatures and XML encryption.

No process is forked per message: signing, verification and encryption run
in-process with python-xmlsec (XML-DSig, XML Encryption) and ``cryptography``
(HTTP-Redirect binding).
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
    EncryptionError,
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
from keys.xmldec import DecryptionError, decrypt_element, load_decryption_key
from keys.xmldsig import verify_xml
from keys.xmlenc import (
    AES128_CBC,
    AES128_GCM,
    AES256_CBC,
    AES256_GCM,
    ENCRYPTED_ASSERTION,
    RSA_OAEP_MGF1P,
    check_recipient,
    encrypt_element,
)

__all__ = [
    "AES128_CBC",
    "AES128_GCM",
    "AES256_CBC",
    "AES256_GCM",
    "ECDSA_SHA256",
    "ECDSA_SHA384",
    "ECDSA_SHA512",
    "ENCRYPTED_ASSERTION",
    "EXC_C14N",
    "RSA_OAEP_MGF1P",
    "RSA_SHA256",
    "RSA_SHA384",
    "RSA_SHA512",
    "SAML_ISSUER",
    "SHA256",
    "DecryptionError",
    "EncryptionError",
    "FileSigner",
    "InvalidSignature",
    "MissingSignature",
    "SignatureError",
    "Signer",
    "UnsafeSignature",
    "UnsafeXml",
    "check_recipient",
    "decrypt_element",
    "encrypt_element",
    "ensure_key_pair",
    "generate_key_pair",
    "load_decryption_key",
    "parse_safe_xml",
    "sign_query",
    "verify_query",
    "verify_xml",
]
