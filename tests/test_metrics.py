"""Prometheus metrics at /metrics: logins by key and result, SSO responses, latency,
lockouts, rate-limit refusals, signing time; only for the allowed networks."""
from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY

from tests.saml_sp import audit_events, autopost_fields, follow, login_with_password, send


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(app, address="127.0.0.1"):
    return app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": address})


def test_a_login_is_seen_in_prometheus_format(world):
    app, services, monespace, _ = world
    before = (sample("sesame_logins_total", key="password", result="ok"),
              sample("sesame_sso_responses_total", result="ok"),
              sample("sesame_signing_seconds_count", backend="FileSigner"),
              sample("sesame_http_request_seconds_count", endpoint="saml.sso_redirect", method="GET", status="3xx"))
    browser = app.test_client()
    sent = monespace.request()
    page = follow(browser, send(browser, sent))
    _, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    monespace.parse(fields["SAMLResponse"])
    after = (sample("sesame_logins_total", key="password", result="ok"),
             sample("sesame_sso_responses_total", result="ok"),
             sample("sesame_signing_seconds_count", backend="FileSigner"))
    assert after[0] == before[0] + 1 and after[1] == before[1] + 1
    assert after[2] >= before[2] + 1  # the response (and the assertion) signed, timed
    answer = scrape(app)
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    text = answer.get_data(as_text=True)
    assert re.search(r'^sesame_logins_total\{key="password",result="ok"\} \d', text, re.M)
    assert re.search(r'^sesame_http_request_seconds_bucket\{endpoint="[a-z_.]+",le="0.005",method="(GET|POST)",'
                     r'status="\dxx"\} \d', text, re.M)
    assert "sesame_signing_seconds_bucket" in text


@pytest.fixture
def strict_idp(make_idp):
    """Two password failures lock an account; three checks an address may make in the window."""
    return make_idp(keys={"password": {"max_failures": 2, "lockout_seconds": 900}},
                    limits={"per_address_attempts": 3, "per_address_window_seconds": 300})


def test_failures_lockouts_and_rate_limits_are_counted(strict_idp, tmp_path):
    from tests.saml_sp import MON_ESPACE, TestPortal

    app, services = strict_idp
    portal = TestPortal(services, MON_ESPACE, tmp_path / "sp")
    bad = lambda: sample("sesame_logins_total", key="password", result="bad_credentials")  # noqa: E731
    locked = lambda: sample("sesame_lockouts_total", key="password")  # noqa: E731
    limited = lambda: sample("sesame_rate_limited_total", key="password", reason="rate_limited")  # noqa: E731
    start = (bad(), locked(), limited())
    browser = app.test_client()
    page = follow(browser, send(browser, portal.request()))
    for _ in range(4):  # wrong, wrong (locks), then over the address's 3 checks
        login_with_password(browser, page, username="marie.dupont", password="not the password")
    assert bad() == start[0] + 1
    assert locked() == start[1] + 1
    assert limited() == start[2] + 1
    assert len(audit_events(services, "login.lockout")) == 1


def test_metrics_refused_to_an_address_outside_the_allow_list(world):
    app, services, _, _ = world
    answer = scrape(app, "203.0.113.9")
    assert answer.status_code == 404 and b"sesame_" not in answer.get_data()
    (event,) = audit_events(services, "metrics.refused")
    assert event.remote_addr == "203.0.113.9" and event.result == "address_not_allowed"
    assert scrape(app, "::1").status_code == 200


def test_allow_list_from_configuration(make_idp):
    app, _ = make_idp(metrics={"allow": ["10.1.0.0/16"]})
    assert scrape(app, "10.1.2.3").status_code == 200
    assert scrape(app, "127.0.0.1").status_code == 404


def test_bad_allow_list_stops_the_start_with_a_clear_message(make_idp):
    from idp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[metrics\] allow: .*not-a-network"):
        make_idp(metrics={"allow": ["not-a-network"]})


def test_multiprocess_mode_sums_the_workers_files(tmp_path, monkeypatch):
    """gunicorn workers: with PROMETHEUS_MULTIPROC_DIR, /metrics reads every worker's files."""
    import subprocess
    import sys

    folder = tmp_path / "prom"
    folder.mkdir()
    code = ("from idp.app import metrics; metrics.LOGINS.labels('password', 'ok').inc(3)")
    for _ in range(2):  # two "workers"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                       env={**__import__("os").environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)})
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    from idp.app import metrics

    body, _ = metrics.render()
    assert re.search(rb'^sesame_logins_total\{key="password",result="ok"\} 6\.0$', body, re.M)
