"""Thin Flask views; protocol logic lives in ``idp.saml`` and ``idp.saml.sso``."""
from __future__ import annotations


def register_views(app, csrf) -> None:
    from idp.views import login, pages, saml

    app.register_blueprint(saml.bp)
    csrf.exempt(saml.bp)  # portals post SAML messages; their integrity is the signature's job
    app.register_blueprint(login.bp)
    app.register_blueprint(pages.bp)
