"""The demo's outbox: mail and SMS kept as files of the data folder and shown
at ``/demo/outbox`` (demo mode only), so the demo needs no mail server and no
SMS gateway.  Never used outside demo mode (``idp.messaging.from_settings``
refuses it there)."""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

KEEP = 100  # messages kept; older ones are removed when a new one arrives


@dataclass(frozen=True)
class OutboxMessage:
    channel: str      # "mail" | "sms"
    to: str
    subject: str
    text: str
    sent_at: float


class Outbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, channel: str, to: str, subject: str, text: str) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        tmp = self.folder / f".{name}"
        tmp.write_text(json.dumps({"channel": channel, "to": to, "subject": subject, "text": text,
                                   "sent_at": time.time()}), encoding="utf-8")
        os.replace(tmp, self.folder / name)
        for old in sorted(self.folder.glob("*.json"))[:-KEEP]:
            old.unlink(missing_ok=True)

    def messages(self, limit: int = 50) -> list[OutboxMessage]:
        """Newest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json"), reverse=True)[:limit]:
            try:
                found.append(OutboxMessage(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue  # removed meanwhile, or half-written by hand
        return found


class OutboxMailer:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def send(self, *, to: str, subject: str, text: str,
             attachments: list[tuple[str, str, bytes]] | None = None) -> None:
        # The demo keeps text only: an attachment is named at the end of the text, not stored.
        names = "".join(f"\n\n[{filename}]" for filename, _, _ in attachments or ())
        self.outbox.put("mail", to, subject, text + names)


class OutboxSms:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def send(self, *, to: str, text: str) -> None:
        self.outbox.put("sms", to, "", text)
