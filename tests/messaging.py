"""Real message servers for the tests: an SMTP server (aiosmtpd) that keeps
what it receives, and an HTTP server standing in for an SMS gateway.  Sésame
talks to them over TCP exactly as to the real ones (``[mail] backend = "smtp"``,
``[sms] backend = "http"``); tests read the codes from what arrived, as a
citizen reads them.

Fixtures (registered by ``tests/conftest.py``): ``smtp_server`` and
``sms_gateway``; ``mail_settings(smtp_server)`` and ``sms_settings(sms_gateway)``
give the configuration sections pointing at them.
"""
from __future__ import annotations

import email
import email.policy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from tests.live import free_port

CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


@dataclass
class Received:
    to: str
    subject: str
    text: str
    # (filename, content type, bytes) of each attachment of a mail (the token's PDF card)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


@dataclass
class Inbox:
    """What a server received, in order; ``wait_for`` polls for a new one."""

    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message: Received) -> None:
        with self.lock:
            self.messages.append(message)

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.to == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> Received:
        """The ``count``-th message to ``address`` (1: the first), waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no message #{count} to {address} within {timeout} s; got {self.to(address)}")

    def last_code(self, address: str) -> str:
        """The six-digit code of the last message to ``address``."""
        found = self.to(address)
        assert found, f"no message to {address}"
        match = CODE.search(found[-1].text)
        assert match, f"no code in {found[-1].text!r}"
        return match.group(1)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        attachments = [(part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
                       for part in message.iter_attachments()]
        for rcpt in envelope.rcpt_tos:
            self.inbox.add(Received(to=rcpt, subject=str(message["Subject"]), text=text,
                                    attachments=list(attachments)))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    port = free_port()
    controller = Controller(_Handler(inbox), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, inbox)
    finally:
        controller.stop()


def mail_settings(server: SmtpServer) -> dict:
    return {"backend": "smtp", "host": server.host, "port": server.port, "security": "none",
            "sender": "Sésame <no-reply@sesame.test>"}


@dataclass
class SmsGateway:
    url: str
    inbox: Inbox
    fail: list = field(default_factory=list)   # put a status in to make the next send fail with it
    auth: list = field(default_factory=list)   # Authorization headers seen


@pytest.fixture
def sms_gateway():
    inbox = Inbox()
    gateway = SmsGateway("", inbox)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            gateway.auth.append(self.headers.get("Authorization"))
            if gateway.fail:
                self.send_response(gateway.fail.pop(0))
                self.end_headers()
                return
            inbox.add(Received(to=body.get("to", ""), subject=body.get("from", ""), text=body.get("text", "")))
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "queued"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/messages"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()


def sms_settings(gateway: SmsGateway) -> dict:
    return {"backend": "http", "url": gateway.url, "username": "sesame", "password": "gateway-secret",
            "sender": "Sesame"}
