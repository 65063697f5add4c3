"""Load benchmark of Sésame behind its production server (gunicorn).

Run through ``bench/run`` (see bench/README.md).  Everything happens on
127.0.0.1, in a temporary data folder, and stops by itself:

1. a temporary configuration and data folder (SQLite file + SQL state store by
   default; ``--store redis://…`` and ``--database postgresql://…``);
2. Mon Espace registered as a portal and the demo citizens created, through
   ``idp.app.services.Services.build`` and ``idp.app.demo`` (the portal is not served:
   this process plays its pysaml2 SP, as tests/saml_sp.py does);
3. gunicorn started on a free port with ``SESAME_CONFIG`` pointing to the
   configuration, and killed at the end;
4. two timed scenarios with N concurrent simulated browsers (threads, one
   keep-alive ``http.client`` connection and one cookie jar each):
   (a) single sign-on: a new signed AuthnRequest (HTTP-Redirect) sent with an
       existing SSO session cookie, answered by the autopost page carrying a
       signed SAMLResponse;
   (b) a full password login with a fresh cookie jar: AuthnRequest → key
       choice → password form → POST username/password → signed response.
   AuthnRequests are generated before the timed loop (pysaml2 needs ~1 ms of
   CPU for each, on the CPUs the server uses); a sample of the responses is
   then checked by the pysaml2 SP, outside the timed loop.
"""
from __future__ import annotations

import argparse
import collections
import html
import http.client
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
RELAY_STATE = "/"

_INPUT = re.compile(r'<input[^>]*name="(?P<name>[^"]+)"[^>]*value="(?P<value>[^"]*)"', re.S)
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"', re.S)
_PASSWORD_KEY = re.compile(r'href="(/login/password/\?tx=[^"]+)"')


class BenchError(RuntimeError):
    pass


# --- command line -----------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    nproc = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--store", default="sql", help='state store: "sql" or a redis:// URL (e.g. redis://127.0.0.1:6379/14)')
    p.add_argument("--database", default="", help="database URL (e.g. postgresql://postgres@127.0.0.1/sesame_bench); "
                                                    "default: a SQLite file in the temporary folder")
    p.add_argument("--workers", type=int, default=nproc, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--clients", type=int, default=16, help="concurrent simulated browsers")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (upper bound)")
    p.add_argument("--sso-requests", type=int, default=3000,
                   help="AuthnRequests generated for scenario (a): it also stops when they run out")
    p.add_argument("--logins", type=int, default=400,
                   help="AuthnRequests generated for scenario (b): it also stops when they run out")
    p.add_argument("--validate", type=int, default=24, help="responses checked by pysaml2 per scenario")
    p.add_argument("--key-size", type=int, default=None, help="RSA size of the generated signing key "
                                                              "(default: Sésame's default)")
    p.add_argument("--log-level", default="INFO", help="Sésame's log level (JSON lines into the temp folder)")
    p.add_argument("--scenarios", default="sso,login", help="comma-separated: sso, login")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (config, logs, SQLite)")
    args = p.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - {"sso", "login"}
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.clients < 1 or args.workers < 1 or args.threads < 1 or args.duration <= 0:
        p.error("--clients, --workers, --threads and --duration must be positive")
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- set-up ---------------------------------------------------------------------------

@dataclass
class Setup:
    workdir: Path
    config_file: Path
    port: int
    settings: object
    portal_config: object          # pysaml2 SPConfig of Mon Espace
    key_desc: str
    prefix: str
    signer: object = None          # Sésame's signing key, for the bare signature cost


def prepare(args, workdir: Path) -> Setup:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from idp.app.config import load_settings
    from idp.app.demo import DEMO_PORTALS, create_citizens, register_portal, portal_specs
    from idp.app.services import Services, init_secrets

    port = free_port()
    prefix = f"sesame-bench-{secrets.token_hex(4)}:"
    lines = [
        "[server]", f"base_url = {toml_str(f'http://{HOST}:{port}')}",
        f"data_dir = {toml_str(str(workdir / 'idp'))}",
        "demo = false", "",
        "[database]", f"url = {toml_str(args.database)}", "",
        "[store]", f"url = {toml_str(args.store)}", f"prefix = {toml_str(prefix)}", "",
        "[log]", f"level = {toml_str(args.log_level.upper())}", 'format = "json"', "",
        # Every simulated browser comes from 127.0.0.1: the per-address limit would
        # stop the login scenario after 30 checks.  The Argon2 cap stays (it is part
        # of what is measured); a check may wait for a slot instead of answering busy.
        "[limits]", "per_address_attempts = 1000000", "per_username_attempts = 1000000",
        "hash_wait_seconds = 30.0", "",
    ]
    if args.key_size:
        lines += ["[signing]", f"key_size = {args.key_size}", ""]
    config_file = workdir / "sesame.toml"
    config_file.write_text("\n".join(lines))

    if args.store.startswith("redis"):
        import redis
        try:
            redis.Redis.from_url(args.store, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise BenchError(f"Redis at {args.store} does not answer ({exc}); start it "
                             "(python -m tests.services, or apt-get install redis-server)") from exc

    if args.database.startswith(("postgres://", "postgresql")):
        args.created_database = ensure_pg_database(args.database)

    settings = load_settings(str(config_file), environ={})
    try:
        init_secrets(settings)  # what an operator does once with `sesame init-secrets` (not demo mode)
        services = Services.build(settings)
    except Exception as exc:
        raise BenchError(f"cannot prepare Sésame ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    # Mon Espace: signed HTTP-Redirect requests, signed assertions, six attributes, persistent NameID.
    spec = portal_specs("127.0.0.1", (free_port(), free_port()))[0]
    assert spec.slug == DEMO_PORTALS[0].slug
    portal_config = register_portal(services, spec, workdir / "portals")
    create_citizens(services)
    cert = x509.load_pem_x509_certificate(services.signer.certificate_pem)
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        key_desc = f"RSA {public.key_size} bits"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key_desc = f"EC {public.curve.name}"
    else:
        key_desc = type(public).__name__
    services.database.dispose()
    return Setup(workdir=workdir, config_file=config_file, port=port, settings=settings,
                 portal_config=portal_config, key_desc=key_desc, prefix=prefix, signer=services.signer)


def _pg_admin(url: str):
    """(psycopg connection to the server's ``postgres`` database, database name) for a PostgreSQL URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    dsn = dict(host=parsed.host or HOST, port=parsed.port or 5432, user=parsed.username,
               password=parsed.password, dbname="postgres", connect_timeout=3)
    return psycopg.connect(**{k: v for k, v in dsn.items() if v is not None}, autocommit=True), parsed.database


def ensure_pg_database(url: str) -> bool:
    """Create the PostgreSQL database of ``url`` when missing; True when this run created it."""
    import psycopg

    try:
        admin, name = _pg_admin(url)
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL of {url} does not answer ({str(exc).strip()}); start it "
                         "(python -m tests.services, or apt-get install postgresql)") from exc
    with admin:
        if admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return False
        admin.execute(f'create database "{name}"')
        return True


def drop_pg_database(url: str) -> None:
    admin, name = _pg_admin(url)
    with admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


def cleanup_redis(args, prefix: str) -> int:
    if not args.store.startswith("redis"):
        return 0
    import redis

    client = redis.Redis.from_url(args.store, socket_connect_timeout=3)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    return len(keys)


# --- gunicorn -----------------------------------------------------------------------------

class Server:
    """gunicorn in its own process group (ours), killed at the end."""

    def __init__(self, args, setup: Setup) -> None:
        self.log_path = setup.workdir / "gunicorn.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESAME_")}
        env["SESAME_CONFIG"] = str(setup.config_file)
        self.argv = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "--threads", str(args.threads),
                     "--bind", f"{HOST}:{setup.port}", "--graceful-timeout", "5", "--timeout", "60",
                     "idp:create_app()"]
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.port = setup.port

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and len(self.worker_pids()) >= 1:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"gunicorn not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def worker_pids(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(c) for c in children]

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and its workers (all threads)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in [self.proc.pid, *self.worker_pids()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / tick

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.log.close()


# --- the simulated browser ------------------------------------------------------------

class Browser:
    """One keep-alive HTTP/1.1 connection and a cookie jar (name → value)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.cookies: dict[str, str] = {}
        self.retries = 0

    def new_jar(self) -> None:
        self.cookies = {}

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)

    def request(self, method: str, target: str, body: bytes | None = None) -> tuple[int, str | None, bytes]:
        headers = {"Accept-Language": "fr-BE,fr;q=0.9", "User-Agent": "sesame-bench"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (0, 1):
            try:
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle keep-alive connection before reading the request
                self.reconnect()
                if attempt:
                    raise
                self.retries += 1
        for raw in response.headers.get_all("Set-Cookie") or []:
            pair, _, attrs = raw.partition(";")
            name, _, value = pair.strip().partition("=")
            if "max-age=0" in attrs.lower().replace(" ", "") or 'expires=thu, 01 jan 1970' in attrs.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        location = response.headers.get("Location")
        if response.headers.get("Connection", "").lower() == "close":
            self.reconnect()
        return response.status, location, data


def local_target(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def autopost_response(status: int, body: bytes) -> str:
    """The SAMLResponse of an autopost page, or BenchError."""
    if status != 200 or b'id="autopost"' not in body:
        raise BenchError(f"expected the autopost page, got HTTP {status}: {body[:200]!r}")
    page = body.decode("utf-8")
    fields = {m["name"]: html.unescape(m["value"]) for m in _INPUT.finditer(page)}
    return fields["SAMLResponse"]


def password_login(browser: Browser, sso_target: str, username: str, password: str,
                   timings: dict | None = None) -> bytes:
    """AuthnRequest → key choice → password form → POST; returns the autopost page."""
    status, location, body = browser.request("GET", sso_target)
    if status != 303 or not location:
        raise BenchError(f"SSO: expected 303 to the login page, got {status}: {body[:200]!r}")
    status, _, body = browser.request("GET", local_target(location))
    key = _PASSWORD_KEY.search(body.decode("utf-8")) if status == 200 else None
    if key is None:
        raise BenchError(f"key choice page: HTTP {status}, no password key")
    status, _, body = browser.request("GET", html.unescape(key[1]))
    page = body.decode("utf-8")
    fields = {m["name"]: html.unescape(m["value"]) for m in _INPUT.finditer(page)}
    action = _FORM.search(page)
    if status != 200 or action is None or "csrf_token" not in fields:
        raise BenchError(f"password page: HTTP {status}")
    form = urlencode({"csrf_token": fields["csrf_token"], "username": username, "password": password})
    start = time.perf_counter()
    status, _, body = browser.request("POST", html.unescape(action["action"]), form.encode("ascii"))
    if timings is not None:
        timings["post"] = time.perf_counter() - start
    if status != 200 or b'id="autopost"' not in body:
        raise BenchError(f"password POST: HTTP {status}: {body[:300]!r}")
    return body


# --- AuthnRequests (pysaml2) ----------------------------------------------------------------

@dataclass
class Request:
    request_id: str
    target: str     # path?query on Sésame


def generate_requests(portal_config, entity_id: str, count: int) -> list[Request]:
    from saml2.client import Saml2Client

    client = Saml2Client(portal_config)
    out = []
    for _ in range(count):
        req_id, info = client.prepare_for_authenticate(
            entityid=entity_id, relay_state=RELAY_STATE, binding=REDIRECT, sign=True, sigalg=RSA_SHA256,
            digest_alg=SHA256)
        out.append(Request(req_id, local_target(dict(info["headers"])["Location"])))
    return out


def validate(portal_config, samples: list[tuple[str, str]]) -> tuple[int, list[str]]:
    """pysaml2's checks (signature, audience, InResponseTo, times, attributes)."""
    from saml2.client import Saml2Client

    client = Saml2Client(portal_config)
    ok, problems = 0, []
    for request_id, saml_response in samples:
        try:
            parsed = client.parse_authn_request_response(saml_response, POST,
                                                         outstanding={request_id: RELAY_STATE})
            identity = parsed.get_identity()
            if parsed.in_response_to != request_id or not identity.get("egovNRN") or not identity.get("surname"):
                raise BenchError(f"unexpected content: {parsed.in_response_to} {identity}")
            ok += 1
        except Exception as exc:  # report, do not stop
            problems.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    return ok, problems


# --- scenarios ------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    in_window: int = 0                                  # completed before the deadline
    duration: float = 0.0
    post_latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cores: float = 0.0
    stopped_by: str = ""
    samples: list[tuple[str, str]] = field(default_factory=list)
    validated: int = 0
    validation_problems: list[str] = field(default_factory=list)
    retries: int = 0
    generation: tuple[int, float] = (0, 0.0)   # AuthnRequests pre-generated, seconds spent


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    total = sum(fields[:8])                                     # without guest (already in user)
    return (total - idle) / tick, total / tick


def busy_cores(before: tuple[float, float], after: tuple[float, float]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total * len(os.sched_getaffinity(0)) if total > 0 else 0.0


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_timed(name: str, browsers: list[Browser], pool: collections.deque, work, server: Server,
              duration: float, sample_every: int) -> Result:
    """Every client takes requests from ``pool`` until it is empty or time is up."""
    result = Result(name)
    lock = threading.Lock()
    barrier = threading.Barrier(len(browsers) + 1)
    deadline = [0.0]

    def client(index: int, browser: Browser) -> None:
        barrier.wait()
        n = 0
        while time.perf_counter() < deadline[0]:
            try:
                req = pool.popleft()
            except IndexError:
                return
            start = time.perf_counter()
            try:
                extra: dict = {}
                body = work(browser, req, extra)
                done = time.perf_counter()
                elapsed = done - start
                with lock:
                    result.latencies.append(elapsed)
                    if done <= deadline[0]:
                        result.in_window += 1
                    if "post" in extra:
                        result.post_latencies.append(extra["post"])
                    if n % sample_every == 0 and len(result.samples) < 10_000:
                        result.samples.append((req.request_id, body))
            except Exception as exc:
                browser.reconnect()
                with lock:
                    result.errors += 1
                    if len(result.error_examples) < 5:
                        result.error_examples.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            n += 1

    threads = [threading.Thread(target=client, args=(i, b), daemon=True) for i, b in enumerate(browsers)]
    for t in threads:
        t.start()
    cpu0_server, cpu0_client, cpu0_machine = server.cpu_seconds(), client_cpu(), machine_cpu()
    start = time.perf_counter()
    deadline[0] = start + duration
    barrier.wait()
    for t in threads:
        t.join(timeout=duration + 60)
    result.elapsed = time.perf_counter() - start
    result.duration = min(duration, result.elapsed)
    result.server_cpu = server.cpu_seconds() - cpu0_server
    result.client_cpu = client_cpu() - cpu0_client
    result.machine_cores = busy_cores(cpu0_machine, machine_cpu())
    if pool:
        result.stopped_by = "time"
    else:  # the pool ran out first: the window is up to the last completion
        result.stopped_by = "request pool exhausted"
        result.in_window = len(result.latencies)
        result.duration = result.elapsed
    result.retries = sum(b.retries for b in browsers)
    if any(t.is_alive() for t in threads):
        raise BenchError(f"{name}: clients still running after the deadline")
    return result


def scenario_sso(args, setup: Setup, server: Server, citizens) -> Result:
    """(a) A new AuthnRequest with an existing SSO session → autopost with a signed response."""
    warm = 2 * args.clients
    t0 = time.perf_counter()
    requests = generate_requests(setup.portal_config, setup.settings.entity_id,
                                 args.clients + warm + args.sso_requests)
    gen = time.perf_counter() - t0
    browsers = [Browser(setup.port) for _ in range(args.clients)]
    logins, warmups = requests[:args.clients], requests[args.clients:args.clients + warm]
    for i, browser in enumerate(browsers):    # one password login each, untimed
        username = citizens[i % len(citizens)]
        password_login(browser, logins[i].target, username, citizens.password)
    for i, req in enumerate(warmups):          # warm-up, untimed
        browser = browsers[i % len(browsers)]
        status, _, body = browser.request("GET", req.target)
        autopost_response(status, body)
    for browser in browsers:
        browser.reconnect()
        browser.retries = 0

    def work(browser: Browser, req: Request, extra: dict):
        status, _, body = browser.request("GET", req.target)
        if status != 200 or b'name="SAMLResponse"' not in body:
            raise BenchError(f"HTTP {status}: {body[:200]!r}")
        return body

    pool = collections.deque(requests[args.clients + warm:])
    result = run_timed("(a) SSO response, existing session", browsers, pool, work, server, args.duration,
                       sample_every=50)
    result.generation = (len(requests), gen)
    return result


def scenario_login(args, setup: Setup, server: Server, citizens) -> Result:
    """(b) A full password login with a new cookie jar each time."""
    t0 = time.perf_counter()
    requests = generate_requests(setup.portal_config, setup.settings.entity_id, args.clients + args.logins)
    gen = time.perf_counter() - t0
    browsers = [Browser(setup.port) for _ in range(args.clients)]
    for i, browser in enumerate(browsers):     # warm-up, untimed
        password_login(browser, requests[i].target, citizens[i % len(citizens)], citizens.password)
        browser.reconnect()
        browser.retries = 0
    counter = iter(range(10**9))

    def work(browser: Browser, req: Request, extra: dict):
        browser.new_jar()
        username = citizens[next(counter) % len(citizens)]
        return password_login(browser, req.target, username, citizens.password, timings=extra)

    pool = collections.deque(requests[args.clients:])
    result = run_timed("(b) password login, new browser", browsers, pool, work, server, args.duration,
                       sample_every=3)
    result.generation = (len(requests), gen)
    return result


class Citizens(list):
    password: str


# --- report ---------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def describe_db(args) -> str:
    if not args.database:
        return "SQLite file (temporary folder)"
    from sqlalchemy.engine import make_url

    desc = make_url(args.database).render_as_string(hide_password=True)
    return desc + (" (created for this run, dropped after)" if getattr(args, "created_database", False) else "")


def print_header(args, setup: Setup, server: Server, background: float) -> None:
    import gunicorn

    nproc = len(os.sched_getaffinity(0))
    print()
    print("Sésame benchmark")
    print(f"  machine  : nproc={nproc} ({os.cpu_count()} online), {cpu_model()}, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"  server   : gunicorn {gunicorn.__version__}, {args.workers} worker(s) x {args.threads} thread(s) "
          f"(gthread), http://{HOST}:{setup.port}")
    print(f"  storage  : database {describe_db(args)}; state store {args.store}")
    print(f"  signing  : {setup.key_desc}, RSA-SHA256 / SHA-256 (assertions signed, Mon Espace policy: "
          f"6 attributes, persistent NameID)")
    print(f"  clients  : {args.clients} concurrent simulated browsers (threads of this process, http.client "
          f"keep-alive), up to {args.duration:g} s per scenario")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  others   : {background:.2f} CPU core(s) busy while idle before the run (load average {load})"
          + ("  << WARNING: the machine is not idle, figures are lower than they should be"
             if background > 0.25 else ""))
    print(f"  note     : clients and server share the same {nproc} CPU(s); the AuthnRequests are signed by "
          f"pysaml2 before each timed loop so that their generation is not measured")
    print()


def bare_signature_ms(signer, runs: int = 300) -> float:
    """Median CPU (ms, this thread) of the RSA operation alone with Sésame's key, in this run."""
    import statistics

    data = os.urandom(300)
    times = []
    for _ in range(runs):
        t = time.thread_time()
        signer.sign_bytes(data)
        times.append(time.thread_time() - t)
    return statistics.median(times) * 1e3


def print_per_response(results: list[Result], bare: float) -> None:
    """Server CPU per iteration, and its ratio to the bare signature of the same run."""
    for r in results:
        if r.latencies:
            per = r.server_cpu / len(r.latencies) * 1e3
            print(f"  {r.name}: server CPU {per:.2f} ms per iteration (gunicorn master + workers, "
                  f"{len(r.latencies)} iterations); bare RSA signature {bare:.3f} ms in this run "
                  f"(ratio {per / bare:.1f})")
    print()


def print_results(results: list[Result]) -> None:
    head = f"{'scenario':<40}{'n':>7}{'errors':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}" \
           f"{'CPU srv':>9}{'CPU cli':>9}{'CPU all':>9}"
    print(head)
    print("-" * len(head))
    for r in results:
        n = len(r.latencies)
        rate = r.in_window / r.duration if r.duration else 0.0
        cpu = f"{r.server_cpu / r.elapsed:>8.2f}c" if r.elapsed else ""
        cli = f"{r.client_cpu / r.elapsed:>8.2f}c" if r.elapsed else ""
        cli += f"{r.machine_cores:>8.2f}c"
        print(f"{r.name:<40}{n:>7}{r.errors:>8}{rate:>9.1f}{pct(r.latencies, 50) * 1000:>9.1f}"
              f"{pct(r.latencies, 99) * 1000:>9.1f}{max(r.latencies, default=float('nan')) * 1000:>9.1f}{cpu}{cli}")
        if r.post_latencies:
            print(f"{'    of which the password POST alone':<40}{len(r.post_latencies):>7}{'':>8}{'':>9}"
                  f"{pct(r.post_latencies, 50) * 1000:>9.1f}{pct(r.post_latencies, 99) * 1000:>9.1f}"
                  f"{max(r.post_latencies) * 1000:>9.1f}")
    print()
    print("  per s: iterations completed within the time window / window; n, latencies: all iterations "
          "(including those in flight at the deadline, which complete after it)")
    print("  CPU srv / cli / all: CPU cores busy on average (whole run incl. drain) in gunicorn "
          "(master + workers) / in this client process / on the whole machine (incl. PostgreSQL, Redis, "
          "anything else running)")
    for r in results:
        count, gen = r.generation
        print(f"  {r.name}: {r.elapsed:.1f} s, stopped by {r.stopped_by}; {count} AuthnRequests pre-generated in "
              f"{gen:.1f} s ({gen / count * 1000:.2f} ms each, not timed); keep-alive reconnects: {r.retries}")
        print(f"    validated by the pysaml2 SP: {r.validated}/{len(r.samples)} sampled responses "
              f"(signature, audience, InResponseTo, conditions, attributes)")
        for problem in r.validation_problems[:3]:
            print(f"      ! {problem}")
        for example in r.error_examples:
            print(f"      error: {example}")
    print()


# --- main -------------------------------------------------------------------------------------

def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="sesame-bench-"))
    server = None
    setup = None
    from idp.app.demo import DEMO_CITIZENS, DEMO_PASSWORD

    citizens = Citizens(c[0] for c in DEMO_CITIZENS)
    citizens.password = DEMO_PASSWORD
    try:
        print(f"preparing {workdir} ...", flush=True)
        setup = prepare(args, workdir)
        server = Server(args, setup)
        server.wait_ready()
        before = machine_cpu()
        time.sleep(2.0)
        print_header(args, setup, server, busy_cores(before, machine_cpu()))
        results = []
        for name in args.scenarios:
            print(f"running {name} ...", flush=True)
            run = scenario_sso if name == "sso" else scenario_login
            result = run(args, setup, server, citizens)
            step = max(1, len(result.samples) // max(1, args.validate))
            sample = result.samples[::step][:args.validate]
            result.samples = [(rid, autopost_response(200, body)) for rid, body in sample]
            result.validated, result.validation_problems = validate(setup.portal_config, result.samples)
            results.append(result)
        print()
        print_results(results)
        print_per_response(results, bare_signature_ms(setup.signer))
        failed = any(r.errors or r.validation_problems or not r.latencies for r in results)
        return 1 if failed else 0
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        if server is not None:
            print(server.log_tail(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        if setup is not None:
            try:
                cleanup_redis(args, setup.prefix)
            except Exception as exc:
                print(f"redis clean-up failed: {exc}", file=sys.stderr)
        if getattr(args, "created_database", False):
            try:
                if args.keep:
                    print(f"kept the database created for this run: {describe_db(args)}")
                else:
                    drop_pg_database(args.database)
            except Exception as exc:
                print(f"dropping the benchmark database failed: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
