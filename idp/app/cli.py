"""``sesame``: the one command (serve, demo, secrets, portals, users, database)."""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
import time
from pathlib import Path


def _settings(args):
    from idp.app.config import load_settings

    return load_settings(args.config)


def _say_which_instance(args, settings) -> None:
    """An administration command without --config nor $SESAME_CONFIG works on the
    built-in defaults' instance (data folder var/), not on the demo's (var/demo/):
    say so, and how to choose, rather than silently making a second empty instance."""
    if args.config or os.environ.get("SESAME_CONFIG"):
        return
    hint = ""
    if demo_config().exists() and (demo_config().parent.parent / "var" / "demo").exists():
        hint = f"; the demo's instance: sesame -c {demo_config()} ..."
    print(f"sesame: no --config nor $SESAME_CONFIG: using the built-in defaults, data folder "
          f"{settings.data_dir}{hint}", file=sys.stderr)


def _services(args):
    from idp.app.logs import configure_logging
    from idp.app.services import Services

    settings = _settings(args)
    _say_which_instance(args, settings)
    configure_logging(level=settings["log"]["level"], fmt="text")
    return Services.build(settings)


def cmd_serve(args) -> int:
    """Production server: gunicorn with the application factory."""
    os.environ.setdefault("SESAME_CONFIG", args.config or os.environ.get("SESAME_CONFIG", ""))
    from idp.app.services import Services

    Services.build(_settings(args))  # migrate and generate keys once, before the workers fork
    argv = [sys.executable, "-m", "gunicorn", "--bind", args.bind, "--workers", str(args.workers),
            "--threads", str(args.threads), "--access-logfile", "-",
            "--limit-request-line", "8190",  # signed HTTP-Redirect requests can be long
            "idp:create_app()"]
    os.execv(sys.executable, argv)
    return 0  # not reached


def demo_config() -> Path:
    """``conf/demo.toml`` of this checkout (the demo runs from a clone)."""
    return Path(__file__).resolve().parents[2] / "conf" / "demo.toml"


def cmd_demo(args) -> int:
    from idp import create_app
    from idp.app.config import load_settings
    from idp.app.demo import (DEMO_CITIZENS, DEMO_KEY_HOLDERS, DEMO_OFFICER, DEMO_PASSWORD, create_citizens,
                              create_demo_keys, create_demo_office, portal_specs, serve_in_thread,
                              start_itsme_sandbox, start_portals)
    from idp.app.demo import start_eidas_sandbox
    from idp.app.demo import start_eid_sandbox

    settings = load_settings(args.config or str(demo_config()))
    if not settings.demo:
        # The demo creates citizens whose password is published: never on a real instance.
        print("refused: sesame demo runs only with a configuration in demo mode ([server] demo = true)",
              file=sys.stderr)
        return 2
    from idp.app.logs import configure_logging
    from idp.app.services import Services

    configure_logging(level=settings["log"]["level"], fmt=settings["log"]["format"])
    eid = start_eid_sandbox(settings, host=args.host)  # before the services: the eID key reads its trust anchors
    services = Services.build(settings)
    app = create_app(services=services)
    create_citizens(services)
    seeds = create_demo_keys(services)
    office = create_demo_office(services)
    specs = portal_specs("localhost", (args.portal_ports[0], args.portal_ports[1]))
    start_portals(services, specs, settings.data_dir / "portals", host=args.host)
    itsme = start_itsme_sandbox(services)
    eidas = start_eidas_sandbox(services)
    port = int(settings.base_url.rsplit(":", 1)[1])
    serve_in_thread(app, args.host, port)
    print("\nSésame demo is running.\n")
    print(f"  Identity provider : {settings.base_url}/   (metadata: {settings.base_url}/saml/metadata)")
    for spec in specs:
        print(f"  {spec.title:<17} : {spec.base_url}/")
    print("\n  Demo citizens (username + password), password for all: " + DEMO_PASSWORD)
    for c in DEMO_CITIZENS:
        ready = [k for k in DEMO_KEY_HOLDERS.get(c[0], ()) if k in services.adapters]
        print(f"    {c[0]:<14} {c[1] + ' ' + c[2]:<16} keys: {', '.join(['password', *ready])}")
    print("\n  Log in at Mon Espace, then open FSE 21-27: it takes only the eID and itsme, so Sésame asks for one")
    print("  of them (step-up); after that both portals share the session (single sign-on).")
    print("  Mon Espace asks a private e-mail at the first login, FSE 21-27 at each login (its guide's part D);")
    print(f"  their validation e-mails land in each portal's outbox: {specs[0].base_url}/outbox, {specs[1].base_url}/outbox")
    if itsme is not None:
        from sandbox.itsme.identities import IDENTITIES

        print(f"  itsme (sandbox, {services.adapters['itsme'].settings.issuer}): type one of these numbers, "
              "then \"Confirmer\":")
        for identity in IDENTITIES.values():
            print(f"    {identity['phone_number']:<14} {identity['given_name']} {identity['family_name']}")
    if eidas is not None:
        from sandbox.eidas.identities import IDENTITIES as EIDAS_PEOPLE

        print(f"  European key (eIDAS sandbox node, {services.adapters['eidas'].settings.node_sso_url}): choose "
              "the country, then a person and a level at the node:")
        for person in EIDAS_PEOPLE.values():
            name = f"{person['given_name']} {person['family_name']}"
            print(f"    {person['country']}  {name:<16} {person['identifier']}")
    if eid is not None:
        pki, _, softhsm_conf, holders = eid
        print(f"  eID card reader (sandbox PKI, OCSP {pki.ocsp_url}):")
        if softhsm_conf is not None:
            print("    test cards on SoftHSM2, PIN 1234: " + ", ".join(
                f"{p.given} {p.surname} ({p.nrn}{', revoked' if p.kind == 'revoked' else ''})" for p in holders))
            print(f"    in another terminal: SOFTHSM2_CONF={softhsm_conf} .venv/bin/sesame eid "
                  f"--module /usr/lib/softhsm/libsofthsm2.so --origin {settings.base_url} --card {holders[0].nrn}")
        else:
            print("    no test card: install softhsm2 (apt-get install softhsm2; ./scripts/demo does) and restart")
    if any(k in services.adapters for k in ("email_code", "sms_code")):
        print(f"  Codes by e-mail and SMS land in the demo outbox: {settings.base_url}/demo/outbox")
    for username, seed in seeds.items():
        print(f"  Authenticator app of {username}: add the key {seed} to your app (or: "
              f".venv/bin/python -c \"import pyotp; print(pyotp.TOTP('{seed}').now())\")")
    print(f"  Activate keys (as jan.peeters: log in with itsme, then Activer): {settings.base_url}/account/keys")
    print(f"  Registration office {office}: {settings.base_url}/office/ ({DEMO_OFFICER} is its officer: log in with "
          "itsme); the activation mail of a registered person lands in the outbox")
    print("  Ctrl+C stops the demo.\n", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def cmd_init_secrets(args) -> int:
    """Create, once, the secrets and signing key every node shares (into the data folder)."""
    from idp.app.services import init_secrets

    for item, path, state in init_secrets(_settings(args)):
        print(f"{item}\t{state}\t{path or '(set in the configuration)'}")
    print("copy these into the data folder of every node, keeping their modes (files 0600, keys/ 0700)")
    return 0


def cmd_db_upgrade(args) -> int:
    _services(args)
    print("database at the latest schema")
    return 0


def cmd_purge(args) -> int:
    removed = _services(args).store.purge_expired()
    print(f"removed {removed} expired state entries")
    return 0


def _policy_args(args, current: dict | None = None) -> dict:
    policy = dict(current or {})
    if args.policy:
        with open(args.policy, "rb") as fh:
            import tomllib
            policy.update(tomllib.load(fh))
    for name in ("accepted_keys", "attributes"):
        value = getattr(args, name)
        if value is not None:
            policy[name] = [v for v in value.split(",") if v]
    for name in ("min_level", "nameid_format", "sign", "display_name", "encrypt_assertions", "attribute_names"):
        value = getattr(args, name)
        if value is not None:
            policy[name] = value
    return policy


def cmd_portal_add(args) -> int:
    from idp.sessions.levels import LevelTable
    from metadata.errors import MetadataError
    from metadata.fetch import load_metadata_source
    from metadata.policy import policy_from_mapping

    services = _services(args)
    try:
        xml = load_metadata_source(args.source)
        policy = policy_from_mapping(_policy_args(args), known_keys=list(services.adapters),
                                     levels=services.levels.scale)
        portal = services.registry.add(xml=xml, source=args.source, policy=policy, name=args.name,
                                       replace=args.replace)
    except MetadataError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        services.audit.record("portal.refused", result="bad_metadata", source=args.source, reason=exc.detail)
        return 2
    services.audit.record("portal.registered", portal=portal.entity_id, source=args.source)
    print(f"registered {portal.entity_id}")
    return 0


def cmd_portal_list(args) -> int:
    services = _services(args)
    for portal in services.registry.list():
        print(f"{portal.entity_id}\t{portal.name}\t{','.join(portal.policy.accepted_keys) or '*'}"
              f"\tlevel>={portal.policy.min_level}")
    return 0


def cmd_portal_show(args) -> int:
    services = _services(args)
    portal = services.registry.get(args.entity_id)
    if portal is None:
        print(f"no portal {args.entity_id}", file=sys.stderr)
        return 1
    meta = portal.metadata
    print(json.dumps({
        "entity_id": portal.entity_id, "name": portal.name, "source": portal.source,
        "policy": portal.policy.to_mapping(),
        "assertion_consumer_services": [a.location for a in meta.acs],
        "authn_requests_signed": meta.authn_requests_signed, "want_assertions_signed": meta.want_assertions_signed,
        "valid_until": meta.valid_until,
    }, indent=2, ensure_ascii=False, default=str))
    return 0


def cmd_portal_remove(args) -> int:
    services = _services(args)
    if not services.registry.remove(args.entity_id):
        print(f"no portal {args.entity_id}", file=sys.stderr)
        return 1
    services.audit.record("portal.removed", portal=args.entity_id)
    print(f"removed {args.entity_id}")
    return 0


def cmd_user_add(args) -> int:
    """A person with a password key: the username in its normal form (refused
    when it, so normalised, is taken), the password by ``password_policy``."""
    from idp.people import password_policy, usernames

    services = _services(args)
    password = args.password or os.environ.get("SESAME_NEW_PASSWORD") or getpass.getpass("Password: ")
    min_length = int(services.settings["keys"].get("password", {}).get(
        "min_password_length", password_policy.DEFAULT_MIN_LENGTH))
    username_problem = usernames.problem(args.username)
    if username_problem:
        print(f"refused: username {username_problem}", file=sys.stderr)
        return 2
    problems = password_policy.problems(password, username=args.username, min_length=min_length)
    if problems:  # codes only: the password is never printed
        print(f"refused: weak password ({', '.join(problems)}; at least {min_length} characters, not a common "
              "password, not holding the username)", file=sys.stderr)
        return 2
    try:
        birth = dt.date.fromisoformat(args.birth_date) if args.birth_date else None
        person = services.people.create(surname=args.surname, given_name=args.given_name, nrn=args.nrn,
                                        mail=args.mail, birth_date=birth, pref_language=args.lang,
                                        username=args.username, password=password)
    except Exception as exc:  # integrity errors, bad NRN: one line, nothing written
        print(f"refused: {exc.__class__.__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"created {person.fedid}")
    return 0


def _office(args):
    from idp.office.registry import RegistrationOffice

    services = _services(args)
    return services, RegistrationOffice.from_services(services)


def cmd_office_add(args) -> int:
    """A registration office, by a short upper-case code and its name."""
    from idp.office.forms import Refused

    services, office = _office(args)
    try:
        created = office.add_office(args.code, args.name)
    except Refused as exc:
        print(f"refused: {exc.code}", file=sys.stderr)
        return 2
    services.audit.record("office.created", office=created.code, name=created.name)
    print(f"created office {created.code}")
    return 0


def cmd_office_list(args) -> int:
    _, office = _office(args)
    for found in office.offices():
        officers = ", ".join(f"{nrn} {name}" for nrn, name in office.officers(found.code))
        print(f"{found.code}\t{found.name}\t{officers or '-'}")
    return 0


def cmd_officer(args) -> int:
    """Grant or revoke an officer role (the person of ``--nrn`` must exist)."""
    from idp.office.forms import Refused

    services, office = _office(args)
    try:
        changed = (office.grant if args.action == "grant" else office.revoke)(args.office, args.nrn)
    except Refused as exc:
        print(f"refused: {exc.code}", file=sys.stderr)
        return 2
    if changed is None:
        print(f"unchanged: nothing to {args.action}")
        return 0
    event = "officer.granted" if args.action == "grant" else "officer.revoked"
    services.audit.record(event, office=args.office.strip().upper(), person_fedid=changed)
    print(f"{args.action}{'ed' if args.action == 'grant' else 'd'} {changed}")
    return 0


def cmd_eid(args) -> int:
    """The card-reader helper on the citizen's computer (adapters/eid/helper.py, docs/eid.md)."""
    from adapters.eid.helper import main as eid_main

    return eid_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sesame", description="Sésame identity provider")
    parser.add_argument("--config", "-c", help="TOML configuration file (default: $SESAME_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the production server (gunicorn)")
    p.add_argument("--bind", default="127.0.0.1:8080")
    # The measured server model (docs/operations.md, "Server model"): processes, not threads.
    p.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                   help="gunicorn worker processes (default: two per CPU)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per worker (default 1: gunicorn's sync worker)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="run Sésame and two example portals on localhost")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--portal-ports", type=int, nargs=2, default=(8081, 8082))
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eid", help="the eID card-reader helper: signs the login page's challenge with the card")
    from adapters.eid.helper import add_arguments as eid_arguments

    eid_arguments(p)
    p.set_defaults(func=cmd_eid)

    p = sub.add_parser("init-secrets", help="create the secret key, pairwise secret and signing key once "
                                            "(into the data folder), to copy to every node")
    p.set_defaults(func=cmd_init_secrets)

    p = sub.add_parser("db-upgrade", help="migrate the database to the latest schema")
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("purge", help="remove expired entries of the SQL state store (run from cron)")
    p.set_defaults(func=cmd_purge)

    portal = sub.add_parser("portal", help="register and inspect portals").add_subparsers(dest="action", required=True)
    p = portal.add_parser("add", help="register a portal by its metadata file or URL")
    p.add_argument("source")
    p.add_argument("--name")
    p.add_argument("--policy", help="TOML file with the policy")
    p.add_argument("--accepted-keys", dest="accepted_keys", help="comma-separated key ids")
    p.add_argument("--attributes", help="comma-separated released attributes")
    p.add_argument("--min-level", dest="min_level", type=int)
    p.add_argument("--nameid-format", dest="nameid_format", choices=["transient", "persistent"])
    p.add_argument("--sign", choices=["metadata", "assertion", "response", "both"])
    p.add_argument("--attribute-names", dest="attribute_names", choices=["fas", "uri", "both"],
                   help="fas: Sésame's names; uri: standard urn:oid names where they exist; both")
    p.add_argument("--display-name", dest="display_name")
    p.add_argument("--encrypt-assertions", dest="encrypt_assertions", action="store_true", default=None,
                   help="encrypt assertions to the portal's metadata encryption key")
    p.add_argument("--replace", action="store_true", help="replace a portal with the same entity ID")
    p.set_defaults(func=cmd_portal_add)
    p = portal.add_parser("list")
    p.set_defaults(func=cmd_portal_list)
    for name, func in (("show", cmd_portal_show), ("remove", cmd_portal_remove)):
        p = portal.add_parser(name)
        p.add_argument("entity_id")
        p.set_defaults(func=func)

    user = sub.add_parser("user", help="administer people").add_subparsers(dest="action", required=True)
    p = user.add_parser("add", help="create a person with a username + password key")
    p.add_argument("username")
    p.add_argument("--given-name", required=True)
    p.add_argument("--surname", required=True)
    p.add_argument("--nrn")
    p.add_argument("--mail")
    p.add_argument("--birth-date")
    p.add_argument("--lang", default="fr", choices=["fr", "nl", "de", "en"])
    p.add_argument("--password", help="else $SESAME_NEW_PASSWORD, else asked")
    p.set_defaults(func=cmd_user_add)

    office = sub.add_parser("office", help="registration offices").add_subparsers(dest="action", required=True)
    p = office.add_parser("add", help="create a registration office")
    p.add_argument("code", help="short code, upper case (letters, digits, dashes)")
    p.add_argument("name")
    p.set_defaults(func=cmd_office_add)
    p = office.add_parser("list", help="offices and their officers")
    p.set_defaults(func=cmd_office_list)
    officer = sub.add_parser("officer", help="officers of registration offices").add_subparsers(
        dest="action", required=True)
    for name in ("grant", "revoke"):
        p = officer.add_parser(name, help=f"{name} the officer role of an office to a person (by NRN)")
        p.add_argument("--office", required=True)
        p.add_argument("--nrn", required=True)
        p.set_defaults(func=cmd_officer)
    from idp.app.rollover import add_key_commands  # sesame keys list|generate|import|publish|activate|retire

    add_key_commands(sub, _services)
    return parser


def main(argv: list[str] | None = None) -> int:
    from idp.errors import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
