"""Live servers for the browser tests: a real Sésame and the two demo portals,
each served by werkzeug in a thread on a free localhost port.

Used as ``with live_demo(tmp_path) as demo: ...``; everything is shut down when
the block ends.  Unlike the in-process tests, the clock is the real one: the
browser, the portals (pysaml2) and Sésame all read the wall clock.
"""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from idp import create_app
from idp.clock import Clock
from idp.app.demo import create_citizens, portal_specs, serve_in_thread, start_portals
from idp.app.services import Services
from sp_examples.portal import PortalSpec

HOST = "127.0.0.1"      # where the servers listen
NAME = "localhost"      # what the browser and the SAML messages use


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct free ports (all held open together while choosing)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class LiveDemo:
    """Sésame and the demo portals, running."""

    services: Services
    idp_url: str
    portals: dict[str, PortalSpec]                # by slug: "monespace", "fse"
    servers: list = field(default_factory=list)   # werkzeug servers, Sésame first

    def portal_url(self, slug: str) -> str:
        return self.portals[slug].base_url

    def is_idp_login_url(self, url: str) -> bool:
        """Whether ``url`` is one of Sésame's login pages (key choice or a key's steps)."""
        return url.startswith(f"{self.idp_url}/login/") or url.startswith(f"{self.idp_url}/login?")

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()
        self.services.database.dispose()


@contextlib.contextmanager
def live_demo(tmp_path: Path, *, key_types=None, idp_port: int | None = None, portal_apps: bool = False,
              portal_options: dict | None = None, **sections) -> Iterator[LiveDemo]:
    """Start Sésame (demo citizens, real clock) and both demo portals; stop them after.

    ``key_types`` adds keys to choose from (the stand-ins of tests/standin_keys).
    The portals are the bare test page unless ``portal_apps`` (the example portals
    Mon Espace and FSE 21-27, given ``portal_options``: mail settings, clock).
    """
    from tests.conftest import idp_settings

    port, p1, p2 = free_ports(3)
    idp_port = idp_port or port
    idp_url = f"http://{NAME}:{idp_port}"
    settings = idp_settings(tmp_path, base_url=idp_url, **sections)
    services = Services.build(settings, clock=Clock(), key_types=key_types)
    create_citizens(services)
    app = create_app(services=services)
    specs = portal_specs(NAME, (p1, p2))
    if not portal_apps:  # the bare test pages, and FSE 21-27 taking every key as the tests expect
        from tests.saml_sp import FSE

        specs = [replace(spec, app="generic", policy=FSE.policy if spec.slug == "fse" else spec.policy)
                 for spec in specs]
    demo = LiveDemo(services=services, idp_url=idp_url, portals={s.slug: s for s in specs})
    try:
        demo.servers.append(serve_in_thread(app, HOST, idp_port))
        demo.servers.extend(start_portals(services, specs, tmp_path / "portals", host=HOST,
                                          **(portal_options or {})))
        yield demo
    finally:
        demo.close()
