"""Shared fixtures: a Sésame instance on a fresh data folder, and pysaml2 service
providers registered with it (tests/saml_sp.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from idp import create_app
from idp.clock import FrozenClock
from idp.app.config import load_settings
from idp.app.demo import create_citizens
from idp.app.services import Services

pytest_plugins = ["tests.services", "tests.browsers", "tests.messaging"]


def idp_settings(tmp_path, *, base_url="http://idp.test", store="sql", database="", **sections):
    overrides = {
        "server": {"base_url": base_url, "data_dir": str(tmp_path / "idp"), "demo": True},
        "database": {"url": database},
        "store": {"url": store},
        "log": {"format": "text", "level": "INFO"},
        # Real Argon2id, at a test-suite cost (configuration, not a back door).
        "hashing": {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(None, overrides=overrides, environ={})


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
def make_idp(tmp_path, clock):
    """Build a Sésame (app, services) with demo citizens; overrides per call."""

    def build(**kwargs):
        settings = idp_settings(tmp_path, **kwargs)
        services = Services.build(settings, clock=clock)
        create_citizens(services)
        return create_app(services=services), services

    return build


@pytest.fixture
def idp(make_idp):
    return make_idp()


@pytest.fixture
def world(idp, tmp_path):
    """Sésame with the two demo portals registered, as pysaml2 test SPs:
    ``(app, services, monespace, fse)`` (tests/saml_sp.py)."""
    from tests.saml_sp import FSE, MON_ESPACE, TestPortal

    app, services = idp
    return app, services, TestPortal(services, MON_ESPACE, tmp_path / "sp"), TestPortal(services, FSE, tmp_path / "sp")


def write_node(directory: Path, *, demo: bool, extra: str = "") -> Path:
    """A node's configuration file: its data folder (SQLite in it), demo mode or not."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sesame.toml"
    path.write_text(f"""
[server]
base_url = "http://idp.test"
data_dir = "{directory / 'data'}"
demo = {str(demo).lower()}

[hashing]
argon2_time_cost = 1
argon2_memory_kib = 8192
argon2_parallelism = 1

[log]
format = "text"
{extra}
""", encoding="utf-8")
    return path


# --- RSA keys: generated once per size, handed out in turn ------------------------------
POOL_SIZE = 8  # distinct keys per size: the IdP and each portal of one test get different ones


@pytest.fixture(autouse=True, scope="session")
def pooled_rsa_keys():
    """Every test builds a Sésame and its portals, each with fresh RSA keys (3072 bits
    for a portal: about 0.25 s each).  Real keys still, from a pool made once per
    size and handed out in turn, so that consecutive keys (the IdP's, each portal's)
    differ; only the time to make them is saved.  Applies in this process (a
    ``sesame`` subprocess makes its own)."""
    import itertools

    from cryptography.hazmat.primitives.asymmetric import rsa

    real = rsa.generate_private_key
    pools: dict[tuple[int, int], itertools.cycle] = {}
    made: dict[tuple[int, int], list] = {}

    def pooled(public_exponent, key_size, backend=None):
        size = (public_exponent, key_size)
        keys = made.setdefault(size, [])
        if len(keys) < POOL_SIZE:  # the pool fills as keys are asked for
            keys.append(real(public_exponent=public_exponent, key_size=key_size))
            return keys[-1]
        if size not in pools:
            pools[size] = itertools.cycle(keys)
        return next(pools[size])

    rsa.generate_private_key = pooled
    try:
        yield
    finally:
        rsa.generate_private_key = real
