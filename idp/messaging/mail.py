"""E-mail over SMTP (``[mail]``), with the standard library's ``smtplib``:
``security`` is ``starttls`` (port 587), ``tls`` (implicit TLS, port 465) or
``none`` (a relay on the same host or network); certificates are verified
against the system's CAs unless ``verify_tls`` is false (a test server)."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from idp.messaging import DeliveryFailed

SECURITY = ("starttls", "tls", "none")


class SmtpMailer:
    def __init__(self, *, host: str, port: int, sender: str, security: str = "starttls", username: str = "",
                 password: str = "", verify_tls: bool = True, timeout: float = 10.0) -> None:
        if security not in SECURITY:
            raise ValueError(f"[mail] security must be one of {', '.join(SECURITY)}, not {security!r}")
        if not host or not sender:
            raise ValueError("[mail] host and sender are needed to send mail over SMTP")
        self.host, self.port, self.sender, self.security = host, port, sender, security
        self.username, self.password, self.timeout = username, password, timeout
        self.context = ssl.create_default_context()
        if not verify_tls:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    def message(self, *, to: str, subject: str, text: str,
                attachments: list[tuple[str, str, bytes]] | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to codes
        msg.set_content(text)
        for filename, mime_type, content in attachments or ():  # (filename, "application/pdf", bytes)
            maintype, _, subtype = mime_type.partition("/")
            msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
        return msg

    def send(self, *, to: str, subject: str, text: str,
             attachments: list[tuple[str, str, bytes]] | None = None) -> None:
        msg = self.message(to=to, subject=subject, text=text, attachments=attachments)
        try:
            if self.security == "tls":
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=self.context)
                if self.username:
                    client.login(self.username, self.password)
                client.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"SMTP {self.host}:{self.port}: {exc.__class__.__name__}: {exc}") from exc
