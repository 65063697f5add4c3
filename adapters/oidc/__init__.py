"""A generic OpenID Connect relying party (``OidcKey``), configured per provider:
itsme (``adapters/itsme``) and any other standard partner provider."""
from adapters.oidc.key import OidcKey, OidcSettings  # noqa: F401
