"""The operator's brand on every page (``[operator]``): the name and mark in the
header, the footer's links (help, privacy, accessibility, contact), the
favicon, and Sésame's own short pages behind the links an operator left empty.

The help page answers the guides' questions ("De quoi ai-je besoin ?",
forgotten username or password, account blocked, no Belgian eID).
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_file

from idp import errors

bp = Blueprint("operator", __name__)
MARK_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def mark_path(settings) -> Path | None:
    """The operator's mark, checked at start: a missing or odd file stops the start, not a page."""
    name = settings["operator"]["mark_file"]
    if not name:
        return None
    path = Path(name).expanduser()
    path = path if path.is_absolute() else settings.data_dir / path
    if path.suffix.lower() not in MARK_TYPES or not path.is_file():
        raise errors.ConfigError(f"[operator] mark_file {str(path)!r}: no such .png, .svg or .jpg file")
    return path


def init_operator(app, settings) -> None:
    """``operator`` for every template, made once: a Jinja global rather than a context
    processor, so that pages rendered outside a request (a token card) have it too."""
    conf = settings["operator"]
    app.config["SESAME_MARK"] = mark_path(settings)
    app.jinja_env.globals["operator"] = {
        "name": conf["name"], "mark": app.config["SESAME_MARK"] is not None,
        "privacy_url": conf["privacy_url"] or "/privacy",
        "accessibility_url": conf["accessibility_url"] or "/accessibility",
        "contact_url": conf["contact_url"] or "/contact",
        "help_desk_url": conf["help_desk_url"]}


@bp.get("/help")
def help_page():
    return render_template("help.html")


@bp.get("/privacy")
def privacy():
    return render_template("privacy.html")


@bp.get("/accessibility")
def accessibility():
    return render_template("accessibility.html")


@bp.get("/contact")
def contact():
    return render_template("contact.html")


@bp.get("/operator/mark")
def mark():
    path = current_app.config.get("SESAME_MARK")
    if path is None:
        abort(404)
    return send_file(path, mimetype=MARK_TYPES[path.suffix.lower()], max_age=3600)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico when a page names none (a PDF, an error from a proxy)."""
    return send_file(Path(current_app.static_folder) / "favicon.svg", mimetype="image/svg+xml", max_age=86400)

