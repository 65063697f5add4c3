"""Thin Flask views; the path of a login lives in ``idp.journeys``, SAML in ``idp.saml``."""
from __future__ import annotations

from jinja2 import ChoiceLoader, FileSystemLoader

from adapters import SHARED_TEMPLATES


def register_views(app, csrf) -> None:
    from idp.journeys.engine import Engine
    from idp.views import account, login, office, operator, pages, saml
    from idp.views.http import FlaskUrls

    from idp.app.web import content_security_policy

    services = app.extensions["sesame"]
    for adapter in services.adapters.values():  # a key asking for a policy it may not have fails at start
        content_security_policy(dict(adapter.page_policy()))
    app.extensions["sesame.journeys"] = Engine(services, FlaskUrls())
    # Each key's templates live next to it (adapters/<key>/templates); the pages
    # keys share (adapters/templates: the security-code keys' steps) after them.
    folders = [str(a.template_folder) for a in services.adapters.values() if a.template_folder]
    folders.append(str(SHARED_TEMPLATES))
    app.jinja_loader = ChoiceLoader([app.jinja_loader, *(FileSystemLoader(f) for f in dict.fromkeys(folders))])
    app.register_blueprint(saml.bp)
    csrf.exempt(saml.bp)  # portals post SAML messages; their integrity is the signature's job
    app.register_blueprint(login.bp)
    csrf.exempt(login.key_return)  # returns from outside: the signed single-use state is the proof
    app.register_blueprint(login.public)
    app.register_blueprint(pages.bp)
    account.init_login(app)  # Flask-Login over the SSO session (idp/views/account.py)
    app.register_blueprint(account.bp)
    app.register_blueprint(office.bp)  # the registration office and its activation path (idp/views/office.py)
    operator.init_operator(app, services.settings)  # the operator's name, mark and footer (idp/views/operator.py)
    app.register_blueprint(operator.bp)
    settings = services.settings
    if settings.demo and "outbox" in (settings["mail"]["backend"], settings["sms"]["backend"]):
        from idp.views import demo  # shows codes to whoever asks: the demo's outbox only
        app.register_blueprint(demo.bp)
