"""Health and readiness for a load balancer: /readyz answers 503 while the state store
(a real Redis, stopped and started again on a port of its own) is down, 200 once back."""
from __future__ import annotations

import shutil

import pytest
from prometheus_client import REGISTRY

from tests.services import PrivateRedis


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: apt-get install redis-server", pytrace=False)
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_liveness(idp):
    app, _ = idp
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}


def test_readiness_follows_the_state_store(make_idp, redis_server):
    app, services = make_idp(store=f"redis://127.0.0.1:{redis_server.port}/0")
    client = app.test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"status": "ready", "checks": {"database": "ok", "store": "ok"}}
    errors = REGISTRY.get_sample_value("sesame_store_errors_total", {"operation": "get"}) or 0.0

    redis_server.stop()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["status"] == "not_ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["store"].startswith("error: ") and "127.0.0.1" not in body["checks"]["store"]
    assert REGISTRY.get_sample_value("sesame_store_errors_total", {"operation": "get"}) == errors + 1
    assert client.get("/healthz").status_code == 200  # alive, only not ready

    redis_server.start()
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.get_json()["status"] == "ready"


def test_readiness_follows_the_database(make_idp, postgres_server):
    """PostgreSQL: a database of its own, whose connections are cut (as a restart does)
    and which is renamed away, then back."""
    from sqlalchemy import create_engine, text

    from tests.services import create_postgres_database, drop_postgres_database

    url = create_postgres_database()
    try:
        app, services = make_idp(database=url)
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        name = url.rsplit("/", 1)[1]
        admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"'))
        try:
            answer = client.get("/readyz")
            assert answer.status_code == 503 and answer.get_json()["checks"]["database"].startswith("error: ")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}_away" RENAME TO "{name}"'))
        assert client.get("/readyz").status_code == 200
        services.database.engine.dispose()
        admin.dispose()
    finally:
        drop_postgres_database(url)
