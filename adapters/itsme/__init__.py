"""itsme (Belgian Mobile ID): the generic OpenID Connect key with itsme's profile.

What itsme asks of a relying party, all of it settings of ``OidcKey``: the
scope ``service:<code>`` of the service it registered, ``acr_values`` basic
or advanced, a signed request object (encrypted where configured),
``private_key_jwt`` at the token endpoint, and ID tokens and userinfo
answers signed then encrypted to the encryption key our JWKS publishes.  The
national register number comes in the userinfo claim ``BENationalNumber``.
"""
from __future__ import annotations

from dataclasses import dataclass

from adapters.base import Group
from adapters.oidc import OidcKey, OidcSettings
from adapters.settings import SettingsError

NRN_CLAIM = "http://itsme.services/v2/claim/BENationalNumber"
ACR = {"basic": "http://itsme.services/V2/claim/acr_basic",
       "advanced": "http://itsme.services/V2/claim/acr_advanced"}


class ItsmeAdapter(OidcKey):
    id = "itsme"
    group = Group.EID
    level = 500
    levels = (500, 500)

    @dataclass(frozen=True)
    class Settings(OidcSettings):
        display_name: str = "itsme"
        acr: str = "advanced"                        # "basic" (a code) or "advanced" (a code and the app)
        scopes: tuple[str, ...] = ("profile", "email", "eid")
        claims: tuple[str, ...] = (NRN_CLAIM,)
        nrn_claim: str = NRN_CLAIM
        request_object: bool = True
        require_encrypted_tokens: bool = True

    def __init__(self, settings=None, **kwargs) -> None:
        super().__init__(settings, **kwargs)
        if self.settings.acr not in ACR:
            raise SettingsError(f"[keys.itsme] acr {self.settings.acr!r}: basic or advanced")

    def acr_values(self):
        # acr_values set by hand win (another itsme environment); else basic or advanced.
        return self.settings.acr_values or (ACR[self.settings.acr],)
