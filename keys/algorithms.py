"""Algorithm identifiers (URIs) accepted and produced by Sésame.

XML-DSig core (https://www.w3.org/TR/xmldsig-core1/ §6) and RFC 6931
(additional XML security URIs).  SHA-1 and MD5 based algorithms are
deliberately absent: they are refused everywhere.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes

DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
SAML_NS: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_ISSUER: Final = "{%s}Issuer" % SAML_NS

# Canonicalization / transforms (XML-DSig core §6.5, §6.6).
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# Signature methods (RFC 6931 §2.3).
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
ECDSA_SHA512: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"

# Digest methods (XML-Encryption §5.7.2, RFC 6931 §2.1).
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512: Final = "http://www.w3.org/2001/04/xmlenc#sha512"

RSA_SIGNATURES: Final = frozenset({RSA_SHA256, RSA_SHA384, RSA_SHA512})
ECDSA_SIGNATURES: Final = frozenset({ECDSA_SHA256, ECDSA_SHA384, ECDSA_SHA512})
SIGNATURE_ALGORITHMS: Final = RSA_SIGNATURES | ECDSA_SIGNATURES
DIGEST_ALGORITHMS: Final = frozenset({SHA256, SHA384, SHA512})

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    RSA_SHA256: hashes.SHA256,
    RSA_SHA384: hashes.SHA384,
    RSA_SHA512: hashes.SHA512,
    ECDSA_SHA256: hashes.SHA256,
    ECDSA_SHA384: hashes.SHA384,
    ECDSA_SHA512: hashes.SHA512,
}


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """Return the hash of an accepted signature method URI.

    Raises ``ValueError`` for any URI outside ``SIGNATURE_ALGORITHMS``.
    """
    try:
        return _HASHES[algorithm]()
    except KeyError:
        raise ValueError(f"unsupported signature algorithm {algorithm!r}") from None
