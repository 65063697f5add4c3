"""SMS through an HTTP gateway (``[sms]``): one POST per message, a JSON body
built from ``body_template`` (a JSON document whose strings may name
``$to``, ``$text`` and ``$sender``), HTTP basic authentication when a
username is set.  Any 2xx answer means the gateway took the message.

The template is parsed once, at start, and the values are put into the parsed
document (never pasted into JSON text), so a message cannot change the body's
shape whatever it holds."""
from __future__ import annotations

import base64
import json
import string
import urllib.error
import urllib.request
from typing import Any

from idp.messaging import DeliveryFailed

DEFAULT_TEMPLATE = '{"to": "$to", "text": "$text", "from": "$sender"}'


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        return string.Template(node).safe_substitute(values)
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    return node


class HttpSmsGateway:
    def __init__(self, *, url: str, sender: str = "Sesame", username: str = "", password: str = "",
                 body_template: str = DEFAULT_TEMPLATE, timeout: float = 10.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"[sms] url must be an http(s) URL, not {url!r}")
        try:
            self.template = json.loads(body_template)
        except ValueError as exc:
            raise ValueError(f"[sms] body_template is not JSON: {exc}") from None
        self.url, self.sender, self.timeout = url, sender, timeout
        self.auth = ("Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()) if username else None

    def body(self, *, to: str, text: str) -> bytes:
        return json.dumps(_fill(self.template, {"to": to, "text": text, "sender": self.sender})).encode("utf-8")

    def send(self, *, to: str, text: str) -> None:
        request = urllib.request.Request(self.url, data=self.body(to=to, text=text), method="POST",
                                         headers={"Content-Type": "application/json"})
        if self.auth:
            request.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            raise DeliveryFailed(f"SMS gateway answered {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise DeliveryFailed(f"SMS gateway unreachable: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryFailed(f"SMS gateway answered {status}")
