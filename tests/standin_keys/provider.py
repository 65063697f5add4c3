"""The outside parties of the stand-in keys, as one small Flask application:
an OpenID-like provider (``/authorize``: answers by ``form_post``, a cross-site
POST to the key's return endpoint), an upstream node (``/node``: answers by a
GET with ``RelayState`` and the level it chose), and a local card helper
(``/sign``: what the card page's script fetches, with CORS like a real one).

Who the provider vouches for is set per test in ``provider.config``.
"""
from __future__ import annotations

import html

from flask import Flask, jsonify, redirect, request
from urllib.parse import urlencode

from tests.standin_keys import card_signature, token_signer

SECRET = "standin-shared-secret"
CARD = {"nrn": "85031412302"}
PERSON = {"nrn": "85031412302", "given_name": "Marie", "surname": "Dupont"}


def create_provider() -> Flask:
    app = Flask("standin_provider")
    app.config.update(PERSON=dict(PERSON), NODE={"id": "EU/BE/ab12", "level": 500, "given_name": "Ana",
                                                 "surname": "Silva"}, CARD=dict(CARD))

    @app.get("/authorize")
    def authorize():
        person = app.config["PERSON"]
        code = token_signer(SECRET, "code").dumps({**person, "nonce": request.args["nonce"]})
        fields = {"state": request.args["state"], "code": code}
        inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
        return (f'<!doctype html><html><body><form id="back" method="post" '
                f'action="{html.escape(request.args["redirect_uri"])}">{inputs}'
                f'<button type="submit" id="go">Back</button></form>'
                f'<script>document.getElementById("back").submit()</script></body></html>')

    @app.get("/node")
    def node():
        said = token_signer(SECRET, "node").dumps(app.config["NODE"])
        return redirect(f'{request.args["acs"]}?{urlencode({"RelayState": request.args["RelayState"], "SAMLResponse": said})}',
                        code=303)

    @app.get("/sign")
    def sign():
        card = app.config["CARD"]
        body = {"nrn": card["nrn"], "signature": card_signature(SECRET, request.args["nonce"], card["nrn"])}
        response = jsonify(body)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    return app
