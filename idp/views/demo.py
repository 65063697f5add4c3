"""The demo's outbox (demo mode only): the mail and SMS Sésame would have sent,
newest first, so the e-mail and SMS keys can be tried on localhost without a
mail server or an SMS gateway.  Never registered outside demo mode: it shows
codes to whoever asks."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, render_template

from idp.messaging.delivery import outbox
from idp.views.http import services

bp = Blueprint("demo", __name__, url_prefix="/demo")


@bp.get("/outbox")
def outbox_page():
    messages = outbox(services().settings).messages()
    shown = [(m, dt.datetime.fromtimestamp(m.sent_at).strftime("%H:%M:%S")) for m in messages]
    return render_template("demo_outbox.html", messages=shown)
