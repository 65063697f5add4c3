"""The portal registry and policy (DESIGN.md §1 step 2, §4).

- ``metadata.portal_metadata``: ``parse_sp_metadata`` → ``PortalMetadata`` (SAML metadata 2.0).
- ``metadata.policy``: ``PortalPolicy``, ``policy_from_mapping``.
- ``metadata.registry``: ``PortalRegistry`` → ``RegisteredPortal`` (cached, multi-process safe).
- ``metadata.fetch``: ``load_metadata_source`` (file or http(s) URL).
- ``metadata.idp_metadata``: ``build_idp_metadata`` (Sésame's own metadata).

Every refusal raises ``idp.errors.MetadataError`` with an English ``detail``.
"""
from __future__ import annotations

from metadata.fetch import load_metadata_source
from metadata.idp_metadata import build_idp_metadata
from metadata.policy import ATTRIBUTE_PROFILE, NameIdFormat, PortalPolicy, SignMode, Signing, policy_from_mapping
from metadata.portal_metadata import (
    BINDING_HTTP_POST,
    AssertionConsumerService,
    Endpoint,
    PortalMetadata,
    parse_sp_metadata,
)
from metadata.registry import PortalRegistry, RegisteredPortal

__all__ = [
    "ATTRIBUTE_PROFILE", "BINDING_HTTP_POST", "AssertionConsumerService", "Endpoint", "NameIdFormat",
    "PortalMetadata", "PortalPolicy", "PortalRegistry", "RegisteredPortal", "SignMode", "Signing",
    "build_idp_metadata", "load_metadata_source", "parse_sp_metadata", "policy_from_mapping",
]
