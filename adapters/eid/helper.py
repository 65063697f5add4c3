"""``sesame eid``: the card-reader helper on the citizen's computer.

``sesame eid --origin https://sesame.example`` serves a loopback endpoint
(``http://127.0.0.1:24727/authenticate``) that the eID login page's own script
calls with the server's nonce; the helper shows whose card it found, asks for
the PIN in its terminal (or reads it from ``--pin-file``, for tests), has the
card sign ``hash(origin) || hash(nonce)`` and answers the Web eID token.

Rules of that endpoint, because any web page can try to call it:

* it listens on 127.0.0.1 only, and refuses a ``Host`` other than the
  loopback one (a DNS-rebinding page would send its own name);
* the origin it signs for is the browser's ``Origin`` header, never a value
  of the request body, and only the configured origin gets an answer (CORS:
  ``Access-Control-Allow-Origin`` is that origin alone, never ``*``);
* Chromium's Private Network Access preflight (``Access-Control-Request-
  Private-Network: true``) is answered with ``Access-Control-Allow-Private-
  Network: true``, for that origin only;
* one card operation at a time (a single-threaded server): a page cannot
  queue PIN prompts in parallel.

``sesame eid sign --origin ... --nonce ...`` is the fallback when the page
cannot reach the helper (another browser policy, a locked-down network): it
prints a code to paste into the page.  ``sesame eid list`` shows the cards.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from adapters.eid import card as cards
from adapters.eid import webeid

DEFAULT_PORT = 24727
NONCE = re.compile(r"^[A-Za-z0-9_\-+/=]{32,128}$")
MAX_BODY = 4096
APP_VERSION = "sesame-eid/1.0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="serve", choices=["serve", "sign", "list"],
                        help="serve the loopback endpoint (default), sign one challenge (paste code), list cards")
    parser.add_argument("--module", default=os.environ.get("SESAME_EID_MODULE", cards.DEFAULT_MODULE),
                        help="PKCS#11 module (default: the Belgian eID middleware's libbeidpkcs11.so)")
    parser.add_argument("--origin", help="Sésame's origin, e.g. https://sesame.example (as the login page shows)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"loopback port (default {DEFAULT_PORT})")
    parser.add_argument("--nonce", help="sign: the challenge the login page shows")
    parser.add_argument("--card", help="the card to use, by national register number, when several are inserted")
    parser.add_argument("--pin-file", dest="pin_file",
                        help="read the PIN from this file instead of asking (tests, kiosks); keep it 0600")
    parser.add_argument("--once", action="store_true", help="serve: stop after one successful signature")


def _origin(value: str | None) -> str:
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise SystemExit("--origin: Sésame's origin, e.g. https://sesame.example")
    return f"{parts.scheme}://{parts.netloc}"


class Helper:
    """Choosing the card and getting the PIN: the parts shared by both modes."""

    def __init__(self, args, out=sys.stderr) -> None:
        self.module, self.wanted, self.pin_file, self.out = args.module, args.card, args.pin_file, out

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def choose(self) -> cards.Card:
        found = cards.cards(self.module)
        if self.wanted:
            found = [c for c in found if c.nrn == self.wanted]
        if not found:
            raise cards.CardError(cards.NO_CARD, "no eID card in the reader")
        if len(found) == 1 or self.pin_file:
            return found[0]
        for i, c in enumerate(found, 1):
            self.say(f"  {i}. {c.holder}")
        answer = input("Card number: ").strip()
        if not answer.isdigit() or not 1 <= int(answer) <= len(found):
            raise cards.CardError(cards.CANCELLED, "no card chosen")
        return found[int(answer) - 1]

    def pin(self, card: cards.Card) -> str:
        if self.pin_file:
            return Path(self.pin_file).read_text(encoding="utf-8").strip()
        try:
            return getpass.getpass(f"PIN of the card of {card.holder}: ")
        except (EOFError, KeyboardInterrupt):
            raise cards.CardError(cards.CANCELLED, "PIN entry cancelled") from None

    def sign(self, origin: str, nonce: str) -> dict[str, str]:
        card = self.choose()
        self.say(f"Signing in to {origin} with the card of {card.holder}")
        return cards.authenticate(card, origin=origin, nonce=nonce, pin=self.pin(card), module=self.module,
                                  app_version=APP_VERSION)

    def report(self, error: cards.CardError) -> None:
        tries = {"count_low": " (the card says: few tries left)", "final_try": " (the card says: LAST try left)",
                 "locked": " (the card says: PIN blocked)"}.get(error.tries or "", "")
        self.say(f"eID error [{error.code}]: {error.detail}{tries}")


def make_handler(helper: Helper, origin: str, port: int, on_success=None):
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    class Handler(BaseHTTPRequestHandler):
        server_version = "sesame-eid"

        def log_message(self, fmt, *args):  # the terminal shows our own lines only
            pass

        def _allowed(self) -> bool:
            return self.headers.get("Host") in hosts and self.headers.get("Origin") == origin

        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

        def _json(self, status: int, body: dict) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_OPTIONS(self):  # noqa: N802 (http.server's naming)
            if self.path != "/authenticate" or not self._allowed():
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(204)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.send_header("Access-Control-Max-Age", "60")
            if self.headers.get("Access-Control-Request-Private-Network") == "true":
                self.send_header("Access-Control-Allow-Private-Network", "true")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            if self.path == "/status" and self._allowed():
                return self._json(200, {"app": APP_VERSION})
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):  # noqa: N802
            if self.path != "/authenticate" or not self._allowed():
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(min(length, MAX_BODY))) if 0 < length <= MAX_BODY else None
            except ValueError:
                body = None
            nonce = body.get("nonce") if isinstance(body, dict) else None
            if not isinstance(nonce, str) or not NONCE.match(nonce):
                return self._json(400, {"error": "bad_request"})
            try:
                token = helper.sign(origin, nonce)
            except cards.CardError as exc:
                helper.report(exc)
                return self._json(409, {"error": exc.code, "tries": exc.tries})
            helper.say("Signed: the login page continues.")
            self._json(200, token)
            if on_success is not None:
                on_success()

    return Handler


def serve(args, *, out=sys.stderr) -> int:
    origin = _origin(args.origin)
    helper = Helper(args, out)
    done = []
    server = HTTPServer(("127.0.0.1", args.port), make_handler(helper, origin, args.port,
                                                              on_success=lambda: done.append(True)))
    helper.say(f"sesame eid: ready for {origin} on http://127.0.0.1:{args.port} (Ctrl+C stops)")
    try:
        while not (args.once and done):
            server.handle_request()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(args, *, out=sys.stderr) -> int:
    if args.action == "list":
        try:
            found = cards.cards(args.module)
        except cards.CardError as exc:
            Helper(args, out).report(exc)
            return 1
        for c in found:
            print(f"{c.nrn}  {c.holder}  (slot {c.slot}, {c.token_label})")
        if not found:
            print("no eID card in the reader", file=out)
        return 0 if found else 1
    if args.action == "sign":
        if not args.nonce or not NONCE.match(args.nonce):
            print("--nonce: the challenge shown on the login page", file=out)
            return 2
        helper = Helper(args, out)
        try:
            token = helper.sign(_origin(args.origin), args.nonce)
        except cards.CardError as exc:
            helper.report(exc)
            return 1
        print(webeid.to_code(token))
        return 0
    return serve(args, out=out)
