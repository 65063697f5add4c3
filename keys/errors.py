"""Exceptions raised by the ``keys`` package.

Every exception carries a short English ``reason`` for logs (never shown to a
user) and a stable ``code`` the application maps to its own domain errors
(``idp/errors.py``).  Tests assert the exception type / code, not the wording.

Hierarchy::

    SignatureError
    ├── MissingSignature      no signature where one is required
    ├── InvalidSignature      cryptography failed: bad value, digest, key
    └── UnsafeSignature       structure refused by the strict rules
        └── UnsafeXml         document refused before any signature check
                              (DTD / entities, oversize, malformed)
    EncryptionError           an element could not be encrypted for its recipient

``UnsafeXml`` is a subclass of ``UnsafeSignature`` on purpose: a caller of
``verify_xml`` that handles ``SignatureError`` (or ``UnsafeSignature``) also
handles a hostile document, while ``parse_safe_xml`` users can catch
``UnsafeXml`` alone.
"""

from __future__ import annotations


class SignatureError(Exception):
    """Base class: a message signature (or the message itself) is refused."""

    code = "signature_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingSignature(SignatureError):
    """A signature is required but the message carries none."""

    code = "missing_signature"


class InvalidSignature(SignatureError):
    """The signature does not verify (value, digest, or no trusted key)."""

    code = "invalid_signature"


class UnsafeSignature(SignatureError):
    """The signature's structure is refused (wrapping, algorithms, ...)."""

    code = "unsafe_signature"


class UnsafeXml(UnsafeSignature):
    """The XML document is refused before parsing completes or right after."""

    code = "unsafe_xml"


class EncryptionError(Exception):
    """An element could not be encrypted for its recipient (``keys.xmlenc``)."""

    code = "encryption_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
