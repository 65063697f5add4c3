"""Validation against the SAML metadata 2.0 XML Schema (saml-schema-metadata-2.0.xsd).

The validator is built once, at import (it takes a few hundred milliseconds),
from the schemas pysaml2 ships; ``validate_metadata_schema`` is then cheap
(milliseconds) and thread-safe (xmlschema validators are read-only).
"""
from __future__ import annotations

from importlib.resources import files

import saml2.data.schemas
from lxml import etree
from saml2.xml import schema as saml_schema

from metadata.errors import MetadataError

METADATA_XSD = str(files(saml2.data.schemas).joinpath("saml-schema-metadata-2.0.xsd"))

_VALIDATOR = saml_schema._create_xml_schema_validator(source=METADATA_XSD)


def _first_error_line(exc: BaseException) -> str:
    cause = exc.__cause__
    reason = getattr(cause, "reason", None)
    path = getattr(cause, "path", None)
    if reason:
        return f"{reason} (at {path})" if path else str(reason)
    text = str(cause or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validate_metadata_schema(root: etree._Element) -> None:
    """Raise ``MetadataError`` unless ``root`` is valid SAML metadata 2.0.

    The detail reads "metadata does not validate against the SAML metadata
    schema: <xmlschema's reason> (at <path>)".
    """
    try:
        saml_schema.validate(root, _VALIDATOR)
    except saml_schema.XMLSchemaError as exc:
        raise MetadataError(
            f"metadata does not validate against the SAML metadata schema: {_first_error_line(exc)}"
        ) from None
