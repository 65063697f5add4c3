"""The European key (eIDAS): Sésame as a SAML service provider to an eIDAS node.

``profile``: the eIDAS SAML messages (pure); ``metadata``: our SP metadata;
``key``: the digital key (country page, signed request, checked answer).
See docs/eidas.md.
"""
from adapters.eidas.key import EidasAdapter, EidasSettings

__all__ = ["EidasAdapter", "EidasSettings"]
