"""HTTP glue shared by every view: security headers, error pages, the browser id."""
from __future__ import annotations

import logging
import secrets

from flask_wtf.csrf import CSRFError
from flask import g, render_template, request, session
from jinja2 import pass_context
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from sqlalchemy.exc import OperationalError

from idp import errors
from idp.messages import error_message

log = logging.getLogger("sesame.web")

CSP = {"default-src": ("'none'",), "script-src": ("'self'",), "style-src": ("'self'",), "img-src": ("'self'",),
       "font-src": ("'self'",), "connect-src": ("'self'",), "form-action": ("'self'",),
       "frame-ancestors": ("'none'",), "base-uri": ("'none'",)}
# What a key's page may add (``Adapter.page_policy``): never scripts, frames or base.
EXTENSIBLE = frozenset({"connect-src", "form-action", "img-src"})


def content_security_policy(extra: dict[str, tuple[str, ...]] | None = None, *, frames: tuple[str, ...] = (),
                            framed_by_self: bool = False) -> str:
    """The strict page policy, with the extra sources of this page only.

    Frames are Sésame's own affair, never a key's (``extra``): the logout page
    holds frames going to ``frames`` (the portals told), and a logout frame may be
    framed by Sésame's own pages (``framed_by_self``), nobody else's.
    """
    directives = {name: list(sources) for name, sources in CSP.items()}
    for name, sources in (extra or {}).items():
        if name not in EXTENSIBLE:
            raise ValueError(f"a page may not extend {name}")
        directives[name] += [src for src in sources if src not in directives[name]
                             and not any(c in src for c in ";,\r\n")]
    if frames:
        # origins from portals' metadata: nothing that could end the directive or add a keyword
        directives["frame-src"] = ["'self'", *(src for src in dict.fromkeys(frames)
                                               if not any(c in src for c in " ;,\r\n'"))]
    if framed_by_self:
        directives["frame-ancestors"] = ["'self'"]
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def browser_id(create: bool = True) -> str | None:
    """A random id of this browser, in the session cookie; binds journeys."""
    bid = session.get("b")
    if bid is None and create:
        bid = session["b"] = secrets.token_urlsafe(18)
    return bid


def render_error(error: errors.SesameError):
    g.rendering_error = True  # the page must not fail on what failed (idp/views/account.py load_citizen)
    status = error.http_status
    return render_template("error.html", code=error.code,
                           message=error_message(error.code, error.params)), status


@pass_context
def invalid(context) -> str:
    """``{{ invalid() }}`` in a form field: when the page shows an error (``#error``),
    the field says it is invalid and points at the error, for screen readers."""
    return Markup(' aria-invalid="true" aria-describedby="error"') if context.get("error") else ""


def init_web(app, settings) -> None:
    app.jinja_env.globals["invalid"] = invalid
    proxies = int(settings["server"]["proxies"])
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    hsts = not settings.demo
    from idp.views.ops import init_ops  # /metrics, /healthz, /readyz, request timing (docs/operations.md)
    init_ops(app, settings)

    @app.after_request
    def security_headers(response):
        extra = {name: tuple(sources) for name, sources in (getattr(g, "page_policy", None) or {}).items()}
        if getattr(g, "form_targets", None):
            extra["form-action"] = extra.get("form-action", ()) + tuple(g.form_targets)
        frameable = getattr(g, "frameable", False)  # a logout frame, inside Sésame's own page only
        response.headers["Content-Security-Policy"] = content_security_policy(
            extra, frames=tuple(getattr(g, "frame_sources", None) or ()), framed_by_self=frameable)
        response.headers["X-Frame-Options"] = "SAMEORIGIN" if frameable else "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if hsts:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response

    @app.errorhandler(errors.SesameError)
    def sesame_error(error: errors.SesameError):
        log.warning("%s: %s", error.code, error.detail, extra={"saml": {"code": error.code, "path": request.path}})
        if isinstance(error, errors.StoreUnavailable):
            try:  # the database may be the one that is down: then the log line is all there is
                app.extensions["sesame"].audit.record("store.unavailable", result=error.code, path=request.path,
                                                      remote_addr=request.remote_addr, reason=error.detail[:200])
            except Exception:
                log.exception("store.unavailable not audited")
        return render_error(error)

    @app.errorhandler(OperationalError)
    def database_down(error: OperationalError):
        """The database out of reach (or the SQL state store on it): "start again", a 503."""
        return sesame_error(errors.StoreUnavailable(f"database: {str(error.orig)[:200]}"))

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        log.info("csrf refused on %s: %s", request.path, error.description)
        return render_error(errors.CsrfFailed(str(error.description)))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        """A body over MAX_CONTENT_LENGTH: refused before it is read, audited like any bad message."""
        g.rendering_error = True
        code = "malformed_request" if request.path.startswith("/saml/") else "error"
        app.extensions["sesame"].audit.record("saml.rejected" if code != "error" else "http.rejected",
                                              result="message_too_large", remote_addr=request.remote_addr,
                                              path=request.path)
        return render_template("error.html", code=code, message=error_message(code)), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        g.rendering_error = True
        code = "not_found" if error.code in (404, 405) else "error"
        log.info("http %s on %s", error.code, request.path)
        return render_template("error.html", code=code, message=error_message(code)), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        g.rendering_error = True
        log.exception("unexpected error on %s", request.path)
        try:
            return render_template("error.html", code="internal", message=error_message("internal")), 500
        except Exception:  # the error page itself failed: a plain page, still no stack trace
            log.exception("error page failed")
            return "Erreur technique / Technische fout / Technischer Fehler / Technical error", 500
