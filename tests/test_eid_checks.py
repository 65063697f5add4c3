"""The eID key's pure parts on the sandbox PKI: chain building, the
certificate as proxies pass it, and OCSP answers checked field by field."""
from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.eid import _header_certificate, certificates, revocation
from adapters.eid.revocation import RevocationUnavailable, UrllibFetcher

pytest_plugins = ["tests.eid_fixtures"]

NOW = dt.datetime.now(dt.timezone.utc)


def test_the_chain_goes_to_a_configured_root(eid_world):
    pki = eid_world.pki
    chain = certificates.build_chain(pki.issued["marie"].certificate, intermediates=[pki.ca], roots=[pki.root], now=NOW)
    assert chain == [pki.issued["marie"].certificate, pki.ca, pki.root]
    with pytest.raises(certificates.CertificateRefused) as missing:  # without the Citizen CA configured
        certificates.build_chain(pki.issued["marie"].certificate, intermediates=[], roots=[pki.root], now=NOW)
    assert missing.value.code == "eid_cert_untrusted"


def test_a_certificate_configured_as_a_root_is_still_no_chain(eid_world):
    leaf = eid_world.pki.issued["marie"].certificate
    with pytest.raises(certificates.CertificateRefused) as refused:
        certificates.build_chain(leaf, intermediates=[], roots=[leaf], now=NOW)
    assert refused.value.code == "eid_cert_untrusted"


def test_a_ca_certificate_is_not_a_citizens(eid_world):
    pki = eid_world.pki
    with pytest.raises(certificates.CertificateRefused) as refused:
        certificates.build_chain(pki.ca, intermediates=[], roots=[pki.root], now=NOW)
    assert refused.value.code == "eid_cert_untrusted"


def test_the_holder_comes_from_the_subject(eid_world):
    holder = certificates.holder_of(eid_world.pki.issued["jan"].certificate)
    assert (holder.nrn, holder.given_name, holder.surname) == ("90070204588", "Jan", "Peeters")
    assert holder.common_name == "Jan Peeters (Authentication)"


def test_the_header_certificate_in_the_forms_proxies_use(eid_world):
    cert = eid_world.pki.issued["marie"].certificate
    pem = cert.public_bytes(Encoding.PEM).decode()
    for value in (pem, quote(pem), pem.replace("\n", " "), base64.b64encode(cert.public_bytes(Encoding.DER)).decode()):
        assert _header_certificate(value) == cert
    for value in ("", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "x" * 30_000):
        assert _header_certificate(value) is None


def test_ocsp_answers_from_the_responder(eid_world, responder):
    pki, fetcher = eid_world.pki, UrllibFetcher(2.0)
    # now, not at import: the responder answers with the time of the answer
    check = dict(now=dt.datetime.now(dt.timezone.utc), max_age=dt.timedelta(hours=1), skew=dt.timedelta(minutes=1))
    status = {slug: revocation.ocsp_status(pki.issued[slug].certificate, pki.ca, pki.ocsp_url, fetcher, **check)
              for slug in ("marie", "luc", "sara")}
    assert status == {"marie": "good", "luc": "revoked", "sara": "unknown"}
    responder.mode = "stale"  # produced two days ago: older than max_age
    with pytest.raises(RevocationUnavailable, match="fresh"):
        revocation.ocsp_status(pki.issued["marie"].certificate, pki.ca, pki.ocsp_url, fetcher, **check)
    responder.mode = "forged"
    with pytest.raises(RevocationUnavailable, match="signed"):
        revocation.ocsp_status(pki.issued["marie"].certificate, pki.ca, pki.ocsp_url, fetcher, **check)


def test_the_crl(eid_world, responder):
    pki, fetcher = eid_world.pki, UrllibFetcher(2.0)
    check = dict(now=dt.datetime.now(dt.timezone.utc), skew=dt.timedelta(minutes=1))
    assert revocation.crl_status(pki.issued["luc"].certificate, pki.ca, pki.crl_url, fetcher, **check) == "revoked"
    assert revocation.crl_status(pki.issued["marie"].certificate, pki.ca, pki.crl_url, fetcher, **check) == "good"
    with pytest.raises(RevocationUnavailable):  # a CRL checked against another issuer's key
        revocation.crl_status(pki.issued["marie"].certificate, pki.rogue_ca, pki.crl_url, fetcher, **check)
    with pytest.raises(RevocationUnavailable):
        UrllibFetcher(1.0).get("file:///etc/passwd")
