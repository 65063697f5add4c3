"""The mailer and the SMS gateway of ``[mail]`` and ``[sms]``.

The outbox backends keep messages in the data folder for the demo's
``/demo/outbox`` page; outside demo mode "outbox" means *none configured*
(None): a key that sends codes then refuses to start (``Services.build``),
and notices are not sent (a code kept in a folder would reach nobody)."""
from __future__ import annotations

from idp.messaging.mail import SmtpMailer
from idp.messaging.outbox import Outbox, OutboxMailer, OutboxSms
from idp.messaging.sms import HttpSmsGateway


def outbox(settings) -> Outbox:
    return Outbox(settings.data_dir / "outbox")


def make_mailer(settings):
    conf = settings["mail"]
    if conf["backend"] == "outbox":
        return OutboxMailer(outbox(settings)) if settings.demo else None
    if conf["backend"] == "smtp":
        return SmtpMailer(host=conf["host"], port=int(conf["port"]), sender=conf["sender"],
                          security=conf["security"], username=conf["username"], password=conf["password"],
                          verify_tls=bool(conf["verify_tls"]), timeout=float(conf["timeout_seconds"]))
    raise ValueError(f"[mail] backend {conf['backend']!r} unknown; known: smtp, outbox")


def make_sms(settings):
    conf = settings["sms"]
    if conf["backend"] == "outbox":
        return OutboxSms(outbox(settings)) if settings.demo else None
    if conf["backend"] == "http":
        return HttpSmsGateway(url=conf["url"], sender=conf["sender"], username=conf["username"],
                              password=conf["password"], body_template=conf["body_template"],
                              timeout=float(conf["timeout_seconds"]))
    raise ValueError(f"[sms] backend {conf['backend']!r} unknown; known: http, outbox")
