"""An itsme sandbox: a real OpenID Connect provider on localhost speaking
itsme's profile, for the demo and the tests (never in production).

* ``/.well-known/openid-configuration`` and ``/jwks.json`` (its keys, made
  in memory at start: never on disk, never in git);
* ``/authorize``: checks the client, its redirect URI, the (signed, maybe
  encrypted) request object, the ``service:`` scope and PKCE, then asks for a
  mobile number and shows "confirm in your app": the button "Confirmer"
  stands for the app, "Refuser" answers ``access_denied``;
* ``/token``: the client authenticated by ``private_key_jwt`` (checked against
  the client's JWKS URL, ``jti`` single use) or ``client_secret_basic``; the
  code single use, its PKCE verifier checked; the ID token signed, then
  encrypted to the client's "enc" key when the client is set up so;
* ``/userinfo``: the claims its scopes and ``claims`` released, signed and
  encrypted likewise (else plain JSON).

Per test, ``state(app).misbehave`` holds switches (``MISBEHAVIOURS``) that make it
answer the way a broken or hostile provider would.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlencode, urlsplit

from flask import Blueprint, Flask, abort, current_app, jsonify, redirect, render_template, request
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import JWException, json_encode
from werkzeug.serving import make_server

from sandbox.itsme.identities import IDENTITIES, normalize_phone

NRN_CLAIM = "http://itsme.services/v2/claim/BENationalNumber"
ACR_ADVANCED = "http://itsme.services/V2/claim/acr_advanced"
ACR_BASIC = "http://itsme.services/V2/claim/acr_basic"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MISBEHAVIOURS = frozenset({
    "access_denied", "login_required",            # the citizen refuses, the app times out
    "wrong_nonce", "expired", "not_yet_valid", "wrong_iss", "wrong_aud",
    "bad_signature", "unknown_kid", "wrong_encryption_key", "not_encrypted",
    "bad_nrn",                                    # a register number failing its check digits
    "slow_token", "token_down",                   # the token endpoint sleeps ``delay`` seconds / answers 503
})
# What a scope releases (OIDC Core §5.4; itsme's "eid" scope gives the register number).
SCOPE_CLAIMS = {"profile": ("given_name", "family_name", "name", "birthdate"), "email": ("email",),
                "phone": ("phone_number",), "eid": (NRN_CLAIM,)}


def client(*, redirect_uris, jwks_uri: str | None = None, jwks: Callable[[], dict] | dict | None = None,
           auth: str = "private_key_jwt", secret: str = "", encrypt: bool = True, request_object: bool = True,
           service_codes=("SESAME_LOGIN",)) -> dict:
    """One registered client.  ``jwks_uri`` is where its public keys are (Sésame:
    ``/keys/itsme/jwks.json``); ``jwks`` gives them directly (a dict or a callable:
    the in-process tests).  ``encrypt``, ``request_object`` and ``service_codes``
    are itsme's profile; off, the sandbox is a plain OpenID Connect provider."""
    return {"redirect_uris": list(redirect_uris), "jwks_uri": jwks_uri, "jwks": jwks, "auth": auth,
            "secret": secret, "encrypt": encrypt, "request_object": request_object,
            "service_codes": list(service_codes)}


@dataclass
class SandboxState:
    issuer: str
    clients: dict
    identities: dict
    signing_key: jwk.JWK
    encryption_key: jwk.JWK
    misbehave: set = field(default_factory=set)
    delay: float = 3.0                      # seconds the token endpoint sleeps when "slow_token"
    pending: dict = field(default_factory=dict)   # authorization in progress, by txn
    codes: dict = field(default_factory=dict)     # code -> grant
    tokens: dict = field(default_factory=dict)    # access token -> grant
    seen_jti: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.misbehave.clear()
            self.pending.clear(), self.codes.clear(), self.tokens.clear()


def state(app: Flask) -> SandboxState:
    return app.extensions["itsme_sandbox"]


def _new_key(use: str) -> jwk.JWK:
    key = jwk.JWK.generate(kty="RSA", size=2048)
    return jwk.JWK(**{**json.loads(key.export_private()), "kid": key.thumbprint(), "use": use})


def create_sandbox_app(issuer_url: str, clients: Mapping[str, dict] | None = None,
                       identities: Mapping[str, dict] | None = None) -> Flask:
    """The sandbox provider, its issuer ``issuer_url`` (a path, e.g. ``/v2``, is kept)."""
    issuer = issuer_url.rstrip("/")
    app = Flask("itsme_sandbox", template_folder=str(Path(__file__).with_name("templates")))
    app.extensions["itsme_sandbox"] = SandboxState(
        issuer=issuer, clients=dict(clients or {}), identities=dict(identities or IDENTITIES),
        signing_key=_new_key("sig"), encryption_key=_new_key("enc"))
    bp = Blueprint("itsme", __name__, url_prefix=urlsplit(issuer).path or None)

    @bp.get("/.well-known/openid-configuration")
    def discovery():
        st = _st()
        return jsonify({
            "issuer": st.issuer, "authorization_endpoint": f"{st.issuer}/authorize",
            "token_endpoint": f"{st.issuer}/token", "userinfo_endpoint": f"{st.issuer}/userinfo",
            "jwks_uri": f"{st.issuer}/jwks.json", "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"], "subject_types_supported": ["pairwise"],
            "scopes_supported": ["openid", "profile", "email", "phone", "eid", "service"],
            "acr_values_supported": [ACR_BASIC, ACR_ADVANCED], "claims_parameter_supported": True,
            "request_parameter_supported": True, "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "id_token_encryption_alg_values_supported": ["RSA-OAEP"],
            "id_token_encryption_enc_values_supported": ["A128CBC-HS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "request_object_signing_alg_values_supported": ["RS256"],
            "request_object_encryption_alg_values_supported": ["RSA-OAEP"],
            "ui_locales_supported": ["fr", "nl", "de", "en"], "claims_supported": [NRN_CLAIM, *(
                c for claims in SCOPE_CLAIMS.values() for c in claims)]})

    @bp.get("/jwks.json")
    def jwks_endpoint():
        st = _st()
        return jsonify({"keys": [dict(json.loads(k.export_public()), alg=alg) for k, alg in
                                 ((st.signing_key, "RS256"), (st.encryption_key, "RSA-OAEP"))]})

    @bp.get("/authorize")
    def authorize():
        st = _st()
        params = request.args.to_dict()
        registered = st.clients.get(params.get("client_id", ""))
        if registered is None:
            return _page_error("Client inconnu."), 400
        if "request" in params:
            try:
                params.update(_request_object(st, registered, params["client_id"], params["request"]))
            except ValueError as exc:
                return _page_error(f"Objet de requête refusé : {exc}"), 400
        elif registered["request_object"]:
            return _page_error("Ce client doit signer sa requête (paramètre request)."), 400
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in registered["redirect_uris"]:  # never send anyone to an unregistered URI
            return _page_error("redirect_uri non enregistrée pour ce client."), 400
        back = lambda error: _back(redirect_uri, error=error, state=params.get("state"))  # noqa: E731
        scopes = str(params.get("scope", "")).split()
        if params.get("response_type") != "code" or "openid" not in scopes:
            return back("invalid_request")
        codes = [s.removeprefix("service:") for s in scopes if s.startswith("service:")]
        if registered["service_codes"] and not (len(codes) == 1 and codes[0] in registered["service_codes"]):
            return back("invalid_scope")
        if params.get("code_challenge_method", "S256") != "S256" or not params.get("code_challenge"):
            return back("invalid_request")  # PKCE S256, always
        claims = params.get("claims") or {}
        if isinstance(claims, str):
            try:
                claims = json.loads(claims)
            except ValueError:
                return back("invalid_request")
        txn = secrets.token_urlsafe(16)
        with st.lock:
            st.pending[txn] = {**params, "scopes": scopes, "claims": claims, "started": time.time()}
        return render_template("number.html", txn=txn, lang=params.get("ui_locales", "fr"),
                               numbers=sorted(st.identities))

    @bp.post("/authorize/number")
    def number():
        st = _st()
        txn = request.form.get("txn", "")
        pending = st.pending.get(txn) or abort(400)
        phone = normalize_phone(request.form.get("phone", ""))
        if phone not in st.identities:
            return render_template("number.html", txn=txn, error="Aucun compte itsme pour ce numéro.",
                                   numbers=sorted(st.identities)), 200
        pending["phone"] = phone
        return render_template("confirm.html", txn=txn, person=st.identities[phone],
                               client_id=pending["client_id"])

    @bp.post("/authorize/confirm")
    def confirm():
        st = _st()
        with st.lock:
            pending = st.pending.pop(request.form.get("txn", ""), None)
        if pending is None or "phone" not in pending:
            abort(400)
        for error in ("access_denied", "login_required"):
            if error in st.misbehave:
                return _back(pending["redirect_uri"], error=error, state=pending.get("state"))
        if request.form.get("decision") != "confirm":
            return _back(pending["redirect_uri"], error="access_denied", state=pending.get("state"))
        code = secrets.token_urlsafe(24)
        with st.lock:
            st.codes[code] = {**pending, "issued": time.time()}
        return _back(pending["redirect_uri"], code=code, state=pending.get("state"))

    @bp.post("/token")
    def token():
        st = _st()
        if "token_down" in st.misbehave:
            return jsonify({"error": "temporarily_unavailable"}), 503
        if "slow_token" in st.misbehave:
            time.sleep(st.delay)
        client_id, failure = _authenticate(st)
        if failure:
            return jsonify({"error": "invalid_client", "error_description": failure}), 401
        with st.lock:
            grant = st.codes.pop(request.form.get("code", ""), None)  # single use
        if (grant is None or grant["client_id"] != client_id or time.time() - grant["issued"] > 60
                or request.form.get("redirect_uri") != grant["redirect_uri"]
                or request.form.get("grant_type") != "authorization_code"):
            return jsonify({"error": "invalid_grant"}), 400
        verifier = request.form.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["code_challenge"]:
            return jsonify({"error": "invalid_grant", "error_description": "PKCE"}), 400
        access = secrets.token_urlsafe(24)
        with st.lock:
            st.tokens[access] = grant
        id_claims = _id_token_claims(st, grant)
        return jsonify({"access_token": access, "token_type": "Bearer", "expires_in": 300,
                        "id_token": _issue(st, grant["client_id"], id_claims)})

    @bp.route("/userinfo", methods=["GET", "POST"])
    def userinfo():
        st = _st()
        bearer = request.headers.get("Authorization", "")
        grant = st.tokens.get(bearer.removeprefix("Bearer ").strip()) if bearer.startswith("Bearer ") else None
        if grant is None:
            return jsonify({"error": "invalid_token"}), 401
        claims = {"sub": _sub(grant), **_released(st, grant, "userinfo")}
        registered = st.clients[grant["client_id"]]
        if not registered["encrypt"]:
            return jsonify(claims)
        claims.update(iss=st.issuer, aud=grant["client_id"])
        return current_app.response_class(_issue(st, grant["client_id"], claims), mimetype="application/jwt")

    app.register_blueprint(bp)
    return app


# --- helpers -------------------------------------------------------------------------------
def _st() -> SandboxState:
    return current_app.extensions["itsme_sandbox"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _page_error(message: str):
    return render_template("error.html", message=message)


def _back(redirect_uri: str, **fields):
    """The authorization response: a GET back to the client (RFC 6749 §4.1.2)."""
    query = urlencode({k: v for k, v in fields.items() if v is not None})
    return redirect(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}", code=303)


def _client_jwks(registered: dict) -> dict:
    if registered.get("jwks") is not None:
        found = registered["jwks"]
        return found() if callable(found) else found
    with urllib.request.urlopen(registered["jwks_uri"], timeout=5) as answer:  # the client's JWKS URL
        return json.loads(answer.read(1_000_000))


def _client_key(registered: dict, use: str, kid: str | None = None) -> jwk.JWK:
    for data in _client_jwks(registered).get("keys", []):
        if data.get("use", use) == use and (kid is None or data.get("kid") == kid):
            return jwk.JWK(**data)
    raise ValueError(f"no {use} key {kid or ''} in the client's JWKS")


def _verify_client_jwt(registered: dict, token: str) -> dict:
    """Claims of a JWT the client signed (request object, client assertion)."""
    try:
        signed = jws.JWS()
        signed.allowed_algs = ["RS256", "PS256", "ES256"]
        signed.deserialize(token)
        signed.verify(_client_key(registered, "sig", signed.jose_header.get("kid")))
        return json.loads(signed.payload)
    except (JWException, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"signature: {type(exc).__name__}") from None


def _request_object(st: SandboxState, registered: dict, client_id: str, token: str) -> dict:
    if token.count(".") == 4:  # encrypted to our "enc" key
        try:
            outer = jwe.JWE()
            outer.deserialize(token, key=st.encryption_key)
            token = outer.payload.decode()
        except (JWException, ValueError) as exc:
            raise ValueError(f"decryption: {type(exc).__name__}") from None
    claims = _verify_client_jwt(registered, token)
    if claims.get("iss") != client_id or claims.get("aud") != st.issuer:
        raise ValueError("iss or aud")
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < time.time():
        raise ValueError("expired")
    return {k: v for k, v in claims.items() if k not in ("iss", "aud", "exp", "iat", "jti")}


def _authenticate(st: SandboxState) -> tuple[str, str | None]:
    """The client of a token request, or why it is refused."""
    form = request.form
    if form.get("client_assertion_type") == JWT_BEARER:  # private_key_jwt (RFC 7523 §2.2)
        token = form.get("client_assertion", "")
        try:
            unverified = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        except (ValueError, IndexError):
            return "", "malformed assertion"
        client_id = str(unverified.get("iss", ""))
        registered = st.clients.get(client_id)
        if registered is None or registered["auth"] != "private_key_jwt":
            return "", "unknown client or not private_key_jwt"
        try:
            claims = _verify_client_jwt(registered, token)
        except ValueError as exc:
            return "", str(exc)
        now = time.time()
        audience = claims.get("aud")
        audience = [audience] if isinstance(audience, str) else audience or []
        if claims.get("sub") != client_id or f"{st.issuer}/token" not in audience and st.issuer not in audience:
            return "", "sub or aud"
        if not isinstance(claims.get("exp"), (int, float)) or not now - 5 < claims["exp"] < now + 600:
            return "", "expired or too long-lived"
        with st.lock:
            if not claims.get("jti") or claims["jti"] in st.seen_jti:
                return "", "jti missing or replayed"
            st.seen_jti.add(claims["jti"])
        return client_id, None
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):  # client_secret_basic
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return "", "malformed Basic"
        client_id, secret = unquote(client_id), unquote(secret)
        registered = st.clients.get(client_id)
        if registered and registered["auth"] == "client_secret_basic" and secrets.compare_digest(
                secret, registered["secret"]):
            return client_id, None
    return "", "no client authentication"


def _sub(grant: dict) -> str:
    """A pairwise subject: the same person, another client, another ``sub``."""
    return hashlib.sha256(f"{grant['client_id']}|{grant['phone']}".encode()).hexdigest()[:32]


def _released(st: SandboxState, grant: dict, where: str) -> dict:
    person = st.identities[grant["phone"]]
    values = {**person, "name": f"{person['given_name']} {person['family_name']}", NRN_CLAIM: person["nrn"]}
    if "bad_nrn" in st.misbehave:
        values[NRN_CLAIM] = person["nrn"][:9] + f"{(int(person['nrn'][9:]) + 1) % 100:02d}"
    # Scopes release to userinfo (an access token is issued); the claims parameter names either.
    names = [c for scope in grant["scopes"] for c in SCOPE_CLAIMS.get(scope, ())] if where == "userinfo" else []
    names += list((grant["claims"].get(where) or {}) if isinstance(grant["claims"], dict) else [])
    return {name: values[name] for name in names if name in values}


def _id_token_claims(st: SandboxState, grant: dict) -> dict:
    now, bad = int(time.time()), st.misbehave
    claims = {"iss": st.issuer + ("/evil" if "wrong_iss" in bad else ""),
              "aud": "someone-else" if "wrong_aud" in bad else grant["client_id"],
              "sub": _sub(grant), "iat": now, "exp": now + 300, "auth_time": int(grant["issued"]),
              "nonce": "not-your-nonce" if "wrong_nonce" in bad else grant.get("nonce"),
              "acr": (grant.get("acr_values") or ACR_ADVANCED).split()[0]}
    if "expired" in bad:
        claims.update(iat=now - 1000, exp=now - 700)
    if "not_yet_valid" in bad:
        claims.update(iat=now + 900, nbf=now + 900, exp=now + 1200)
    return {**_released(st, grant, "id_token"), **claims}


def _issue(st: SandboxState, client_id: str, claims: dict) -> str:
    """Signed with our key (or, misbehaving, another), then encrypted to the client's."""
    bad, key, kid = st.misbehave, st.signing_key, st.signing_key.get("kid")
    if "bad_signature" in bad:
        key = _new_key("sig")          # another key, under our kid
    if "unknown_kid" in bad:
        key = _new_key("sig")
        kid = key.get("kid")
    signed = jws.JWS(json_encode(claims))
    signed.add_signature(key, "RS256", protected={"alg": "RS256", "kid": kid, "typ": "JWT"})
    token = signed.serialize(compact=True)
    registered = st.clients[client_id]
    if not registered["encrypt"] or "not_encrypted" in bad:
        return token
    target = _new_key("enc") if "wrong_encryption_key" in bad else _client_key(registered, "enc")
    header = {"alg": "RSA-OAEP", "enc": "A128CBC-HS256", "cty": "JWT"}
    if target.get("kid"):
        header["kid"] = target.get("kid")
    outer = jwe.JWE(token.encode(), protected=header)
    outer.add_recipient(target)
    return outer.serialize(compact=True)


def start_sandbox(host: str, port: int, *, issuer_url: str | None = None,
                  clients: Mapping[str, dict] | None = None) -> tuple[Any, Flask]:
    """Serve the sandbox in a thread (werkzeug); returns ``(server, app)``.
    Stop it with ``server.shutdown(); server.server_close()``."""
    app = create_sandbox_app(issuer_url or f"http://{host}:{port}", clients)
    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, app
