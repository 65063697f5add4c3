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
