"""Sésame identity provider: the Flask application factory (DESIGN.md §8.8)."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask


def create_app(config: str | Mapping[str, Any] | None = None, *, clock=None, services=None) -> Flask:
    """Build the application.

    ``config`` is a path to a TOML file, or a mapping of overrides laid over the
    defaults, ``$SESAME_CONFIG`` and the environment (tests use a mapping).
    """
    from flask_wtf.csrf import CSRFProtect

    from idp.app.config import load_settings
    from idp.app.i18n import init_i18n
    from idp.app.logs import configure_logging
    from idp.app.services import Services
    from idp.views import register_views
    from idp.app.web import init_web

    if services is None:
        settings = load_settings(config if isinstance(config, str) else None,
                                 overrides=config if isinstance(config, Mapping) else None)
        configure_logging(level=settings["log"]["level"], fmt=settings["log"]["format"])
        services = Services.build(settings, clock=clock)
    settings = services.settings
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=services.secret_key,
        SESSION_COOKIE_NAME=settings["session"]["cookie_name"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.demo,
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=int(settings["saml"]["max_message_bytes"]) * 2,
        # A form is good as long as the SSO session it belongs to: logging out must
        # work however long the home page stayed open.  Login forms need no shorter
        # limit, their journey expires on its own ([session] transaction_ttl_seconds).
        WTF_CSRF_TIME_LIMIT=max(int(settings["session"]["lifetime_seconds"]),
                                int(settings["session"]["transaction_ttl_seconds"])),
        WTF_CSRF_SSL_STRICT=not settings.demo,
    )
    app.extensions["sesame"] = services
    csrf = CSRFProtect(app)
    init_i18n(app, settings)
    init_web(app, settings)
    register_views(app, csrf)
    return app
