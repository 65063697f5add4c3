"""The demo: Sésame and two example portals on localhost (README "Quick start").

"Mon Espace" sends signed requests by HTTP-Redirect and receives names, birth
date, e-mail and national number; "FSE 21-27" sends unsigned requests by
HTTP-POST and receives names only (as its user guide says).  The same
set-up serves the end-to-end tests, on other ports.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from pathlib import Path

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from werkzeug.serving import make_server

from idp.sessions.levels import LevelTable
from keys.generate import ensure_key_pair
from metadata.policy import policy_from_mapping
from sp_examples.portal import PortalSpec, create_portal_app, sp_config, sp_metadata


# The keys the demo portals accept, those not enabled left out (register_portal).
DEMO_KEYS = ("itsme", "password", "totp", "email_code", "sms_code", "token", "eidas", "eid")

DEMO_PORTALS = (
    PortalSpec(slug="monespace", title="Mon Espace", base_url="http://localhost:8081",
               binding=BINDING_HTTP_REDIRECT, sign_requests=True, want_assertions_signed=True,
               policy=(("accepted_keys", list(DEMO_KEYS)), ("min_level", 100),
                       ("attributes", ["surname", "givenName", "birthDate", "mail", "egovNRN", "PrefLanguage"]),
                       ("nameid_format", "persistent"), ("display_name", "Mon Espace")), app="monespace"),
    # FSE 21-27 accepts only the eID and itsme (its guide); register_portal keeps the
    # enabled ones, and an instance with neither accepts every key (the policy's empty list).
    PortalSpec(slug="fse", title="FSE 21-27", base_url="http://localhost:8082",
               binding=BINDING_HTTP_POST, sign_requests=False, want_assertions_signed=False,
               policy=(("accepted_keys", ["eid", "itsme"]), ("min_level", 100),
                       ("attributes", ["surname", "givenName"]), ("nameid_format", "transient"),
                       ("display_name", "FSE 21-27 (Agence FSE)")), app="fse"),
)

# Demo citizens: (username, password, given name, surname, birth date, serial, mail, language).
DEMO_PASSWORD = "Demo-Sesame-2026"
DEMO_CITIZENS = (
    ("marie.dupont", "Marie", "Dupont", dt.date(1985, 3, 14), 123, "marie.dupont@example.be", "fr"),
    ("jan.peeters", "Jan", "Peeters", dt.date(1990, 7, 2), 45, "jan.peeters@example.be", "nl"),
    ("lea.schmitz", "Lea", "Schmitz", dt.date(2001, 11, 30), 208, "lea.schmitz@example.be", "de"),
)


def make_nrn(birth: dt.date, serial: int) -> str:
    """A national register number with correct check digits (DESIGN.md §2)."""
    body = f"{birth:%y%m%d}{serial:03d}"
    base = int(body) + (2_000_000_000 if birth.year >= 2000 else 0)
    return f"{body}{97 - base % 97:02d}"


def idp_metadata_xml(services) -> str:
    return services.sso.metadata().decode("utf-8")


def register_portal(services, spec: PortalSpec, directory: Path):
    """Keys, pysaml2 config and registration of one example portal; returns its config."""
    key_file, cert_file = ensure_key_pair(directory=directory / spec.slug, common_name=spec.slug)
    config = sp_config(spec, key_file=key_file, cert_file=cert_file, idp_metadata=idp_metadata_xml(services))
    wanted = dict(spec.policy)
    if "accepted_keys" in wanted:  # a demo key that is not enabled is simply not offered
        wanted["accepted_keys"] = [k for k in wanted["accepted_keys"] if k in services.adapters]
    policy = policy_from_mapping(wanted, known_keys=list(services.adapters), levels=services.levels.scale)
    services.registry.add(xml=sp_metadata(config), source=f"demo:{spec.slug}", policy=policy,
                          name=spec.title, replace=True)
    return config


def create_citizens(services) -> None:
    for username, given, surname, birth, serial, mail, lang in DEMO_CITIZENS:
        if services.credentials.find(key="password", username=username) is None:
            services.people.create(surname=surname, given_name=given, nrn=make_nrn(birth, serial), mail=mail,
                                   birth_date=birth, pref_language=lang, username=username,
                                   password=DEMO_PASSWORD)


# Keys the demo citizens have ready (the demo's own, never created on a real instance):
# Marie has every security-code key, Lea the e-mail code, Jan none (he can activate them).
DEMO_PHONES = {"marie.dupont": "+32470000123"}
DEMO_KEY_HOLDERS = {"marie.dupont": ("totp", "email_code", "sms_code"), "lea.schmitz": ("email_code",)}


def create_demo_keys(services) -> dict[str, str]:
    """Activate the demo citizens' keys (once); returns the TOTP seeds by username,
    for the banner (an authenticator app, or ``pyotp``, makes the codes from them)."""
    import pyotp

    seeds = {}
    for username, keys in DEMO_KEY_HOLDERS.items():
        login = services.credentials.find(key="password", username=username)
        if login is None:
            continue
        fedid = login.person_fedid
        contact = services.contacts.get(fedid)
        if username in DEMO_PHONES and not contact.phone:
            services.contacts.set_phone(fedid, DEMO_PHONES[username])
        for key in keys:
            if key not in services.adapters:
                continue
            existing = services.credentials.of_person(key=key, person_fedid=fedid)
            if key == "totp":
                if existing is None:
                    seed = pyotp.random_base32()
                    services.credentials.activate(key=key, person_fedid=fedid, data={
                        "seed": services.sealer.seal(seed, owner=f"{fedid}:totp")})
                    existing = services.credentials.of_person(key=key, person_fedid=fedid)
                seeds[username] = services.sealer.open(existing.data["seed"], owner=f"{fedid}:totp")
            elif existing is None:
                to = DEMO_PHONES.get(username) if key == "sms_code" else contact.mail
                services.credentials.activate(key=key, person_fedid=fedid, data={"to": to})
    return seeds


DEMO_OFFICE = ("BXL", "Bureau d'enregistrement de Bruxelles (démo)")
DEMO_OFFICER = "marie.dupont"


def create_demo_office(services) -> str | None:
    """A registration office with Marie as its officer (she logs in with itsme at
    level 500); returns the office's code, None when it could not be made."""
    from idp.office.registry import RegistrationOffice

    office = RegistrationOffice.from_services(services)
    code, name = DEMO_OFFICE
    if office.office(code) is None:
        office.add_office(code, name)
    _, _, _, birth, serial, _, _ = next(c for c in DEMO_CITIZENS if c[0] == DEMO_OFFICER)
    office.grant(code, make_nrn(birth, serial))  # None when already granted: nothing to do
    return code


def start_itsme_sandbox(services, host: str = "127.0.0.1"):
    """The itsme sandbox (sandbox/itsme) at ``[keys.itsme] issuer``, with Sésame
    registered as its client; None when the itsme key is not enabled.  Another
    site than Sésame's (127.0.0.1 against localhost), as the real itsme is."""
    adapter = services.adapters.get("itsme")
    if adapter is None:
        return None
    from urllib.parse import urlsplit

    from sandbox.itsme import client, start_sandbox

    base = services.settings.base_url
    conf = adapter.settings
    registered = client(redirect_uris=[f"{base}/login/itsme/return"], jwks_uri=f"{base}/keys/itsme/jwks.json",
                        service_codes=[conf.service_code])
    server, _ = start_sandbox(host, urlsplit(conf.issuer).port, issuer_url=conf.issuer,
                              clients={conf.client_id: registered})
    return server


def start_eidas_sandbox(services, host: str = "127.0.0.1"):
    """The eIDAS sandbox node (sandbox/eidas) at ``[keys.eidas] node_sso_url``, with
    Sésame registered from its signed SP metadata, as a real node registers a
    connector; None when the European key is not enabled.  The node's keys are new
    at each start: its certificate goes to ``node_certificate_file``, which the key
    reads again when it changes."""
    adapter = services.adapters.get("eidas")
    if adapter is None:
        return None
    from urllib.parse import urlsplit

    from adapters.eidas.metadata import sp_metadata
    from sandbox.eidas import sp_from_metadata, start_sandbox, state

    conf = adapter.settings
    node = urlsplit(conf.node_sso_url)
    metadata = sp_metadata(adapter=adapter, signer=services.signer, now=services.clock.now(),
                           return_url=f"{services.settings.base_url}/login/eidas/return")
    registered = sp_from_metadata(metadata)
    server, app = start_sandbox(host, node.port, base_url=f"{node.scheme}://{node.netloc}",
                                sps={registered["entity_id"]: registered})
    certificate = Path(conf.node_certificate_file)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    certificate.write_bytes(state(app).certificate_pem)
    certificate.chmod(0o600)  # public, but among secrets: one rule for the keys folder
    return server


EID_SANDBOX_PORT = 8092  # the sandbox PKI's OCSP responder and CRL (in every demo card's certificate)


def start_eid_sandbox(settings, host: str = "127.0.0.1"):
    """The eID sandbox (sandbox/eid) when the eID key is enabled, made afresh at each
    start, *before* the services are built (the key reads its trust anchors then):
    a test PKI whose root and Citizen CA go to ``[keys.eid] root_files`` and
    ``intermediate_files``, its OCSP responder on ``EID_SANDBOX_PORT``, and SoftHSM2
    cards (PIN 1234) in ``<data_dir>/eid/softhsm`` when softhsm2 is installed.
    Returns ``(pki, responder, softhsm_conf or None, card holders)``, or None."""
    if "eid" not in settings.enabled_keys:
        return None
    import shutil

    from cryptography.hazmat.primitives.serialization import Encoding

    from sandbox.eid import PEOPLE, OcspResponder, Pki
    from sandbox.eid.cards import make_cards, softhsm_available

    conf = settings.key_settings().get("eid", {})
    directory = settings.data_dir.resolve() / "eid"  # absolute: SOFTHSM2_CONF is used from another terminal
    shutil.rmtree(directory, ignore_errors=True)  # a fresh PKI each start: no CA key is ever kept on disk
    pki = Pki(f"http://{host}:{EID_SANDBOX_PORT}")
    for files, cert in ((conf.get("root_files", []), pki.root), (conf.get("intermediate_files", []), pki.ca)):
        for name in files[:1]:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_bytes(cert.public_bytes(Encoding.PEM))
    responder = OcspResponder(pki, host, EID_SANDBOX_PORT).start()
    holders = [p for p in PEOPLE if p.on_card]
    softhsm_conf = make_cards(directory / "softhsm", pki, holders).conf if softhsm_available() else None
    return pki, responder, softhsm_conf, holders


def portal_specs(host: str, ports: tuple[int, int]) -> list[PortalSpec]:
    return [replace(spec, base_url=f"http://{host}:{port}") for spec, port in zip(DEMO_PORTALS, ports)]


def serve_in_thread(app, host: str, port: int):
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def portal_app(spec: PortalSpec, config, *, idp_entity_id: str, directory: Path, **options):
    """The application ``spec.app`` names: the bare test page, or the example portals
    (sp_examples/monespace, sp_examples/fse) with their data in ``directory/<slug>/data``;
    ``options``: ``mail`` (SMTP settings, None for the portal's demo outbox), ``clock``."""
    if spec.app == "monespace":
        from sp_examples.monespace import create_monespace_app
        return create_monespace_app(spec, config, idp_entity_id=idp_entity_id,
                                    data_dir=directory / spec.slug / "data", **options)
    if spec.app == "fse":
        from sp_examples.fse import create_fse_app
        return create_fse_app(spec, config, idp_entity_id=idp_entity_id,
                              data_dir=directory / spec.slug / "data", **options)
    return create_portal_app(spec, config, idp_entity_id=idp_entity_id)


def start_portals(services, specs, directory: Path, host: str = "127.0.0.1", **options):
    """Register and serve each portal; returns the servers.  ``options`` go to the
    example portals' applications (``portal_app``)."""
    servers = []
    for spec in specs:
        config = register_portal(services, spec, directory)
        app = portal_app(spec, config, idp_entity_id=services.settings.entity_id, directory=directory, **options)
        servers.append(serve_in_thread(app, host, int(spec.base_url.rsplit(":", 1)[1])))
    return servers
