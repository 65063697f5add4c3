"""Mail over SMTP to a real server (aiosmtpd), SMS to a real HTTP gateway, the
demo outbox, and the start-up checks of [mail] and [sms]."""
from __future__ import annotations

import json

import pytest

from idp.app.services import Services
from idp.errors import ConfigError
from idp.messaging import DeliveryFailed
from idp.messaging.mail import SmtpMailer
from idp.messaging.outbox import Outbox, OutboxMailer, OutboxSms
from idp.messaging.sms import HttpSmsGateway
from tests.conftest import idp_settings
from tests.live import free_port
from tests.messaging import mail_settings, sms_settings


def test_mail_reaches_a_real_smtp_server(smtp_server):
    mailer = SmtpMailer(host=smtp_server.host, port=smtp_server.port, sender="Sésame <no-reply@sesame.test>",
                        security="none")
    mailer.send(to="marie@example.be", subject="Votre code de sécurité", text="Votre code : 123456")
    got = smtp_server.inbox.wait_for("marie@example.be")
    assert got.subject == "Votre code de sécurité" and "123456" in got.text


def test_an_unreachable_mail_server_is_a_delivery_failure():
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), sender="no-reply@sesame.test", security="none",
                        timeout=2)
    with pytest.raises(DeliveryFailed):
        mailer.send(to="marie@example.be", subject="s", text="t")


def test_sms_reach_a_real_http_gateway_with_basic_auth(sms_gateway):
    gateway = HttpSmsGateway(url=sms_gateway.url, username="sesame", password="pw", sender="Sesame")
    gateway.send(to="+32470123456", text='Code 123456 "quoted" $to')
    got = sms_gateway.inbox.wait_for("+32470123456")
    assert got.text == 'Code 123456 "quoted" $to'  # a message cannot change the body's shape
    assert sms_gateway.auth[-1].startswith("Basic ")


def test_a_gateway_refusal_is_a_delivery_failure(sms_gateway):
    sms_gateway.fail.append(500)
    with pytest.raises(DeliveryFailed):
        HttpSmsGateway(url=sms_gateway.url).send(to="+32470123456", text="x")


def test_the_sms_body_template_is_checked_at_start():
    with pytest.raises(ValueError):
        HttpSmsGateway(url="http://gateway.test/", body_template="{not json")
    with pytest.raises(ValueError):
        HttpSmsGateway(url="file:///etc/passwd")
    body = json.loads(HttpSmsGateway(url="http://g.test/", body_template='{"m": {"n": "$to"}, "t": ["$text"]}')
                      .body(to="+32470123456", text="hi"))
    assert body == {"m": {"n": "+32470123456"}, "t": ["hi"]}


def test_the_demo_outbox_keeps_mail_and_sms_newest_first(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    OutboxMailer(outbox).send(to="marie@example.be", subject="Code", text="123456")
    OutboxSms(outbox).send(to="+32470123456", text="654321")
    kept = outbox.messages()
    assert [(m.channel, m.to) for m in kept] == [("sms", "+32470123456"), ("mail", "marie@example.be")]


def test_a_key_that_sends_mail_needs_a_mail_server_outside_demo_mode(tmp_path):
    settings = idp_settings(tmp_path, server={"demo": False, "secret_key": "k" * 40, "pairwise_secret": "p" * 40,
                                              "seal_key": "s" * 40},
                            keys={"enabled": ["password", "email_code"]})
    with pytest.raises(ConfigError, match=r"\[mail\] backend"):
        Services.build(settings)


def test_configured_servers_are_used(tmp_path, smtp_server, sms_gateway):
    services = Services.build(idp_settings(tmp_path, mail=mail_settings(smtp_server), sms=sms_settings(sms_gateway)))
    assert isinstance(services.mailer, SmtpMailer) and isinstance(services.sms, HttpSmsGateway)


def test_an_unknown_backend_fails_at_start(tmp_path):
    with pytest.raises(ConfigError, match="backend"):
        Services.build(idp_settings(tmp_path, mail={"backend": "pigeon"}))
