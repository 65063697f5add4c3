"""The one error of the metadata package, kept here so that ``metadata`` imports
nothing from ``idp`` (arrows point one way: ``idp`` uses ``metadata``).

``idp`` catches it at its boundaries (the CLI, the registry lookups) and turns
it into its own errors where a citizen could see it.
"""
from __future__ import annotations


class MetadataError(Exception):
    """Metadata or policy refused; ``detail`` says what is wrong, in English, for integrators."""

    code = "bad_metadata"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail


class MetadataConfigError(MetadataError):
    """Our own metadata cannot be built from the configuration given (a bad
    validity, a certificate that is not X.509): an operator's mistake at start."""

    code = "config"
