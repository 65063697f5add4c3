"""keys.redirect: HTTP-Redirect binding signatures (SAML bindings §3.4.4.1)."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from saml2 import samlp
from saml2.pack import http_redirect_message
from saml2.sigver import RSACrypto, verify_redirect_signature
from saml2.xmldsig import SIG_RSA_SHA256

from keys import (
    ECDSA_SHA256,
    RSA_SHA256,
    RSA_SHA512,
    FileSigner,
    InvalidSignature,
    MissingSignature,
    UnsafeSignature,
    ensure_key_pair,
    sign_query,
    verify_query,
)

RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
# Deflated + base64 AuthnRequest-like payload: '+', '/' and '=' must be encoded.
SAML_REQUEST = "fZJNb+IwEIbv/RWW7yR2+Sg1JBUtqlqJ3UUk7WFvruMEq8k49ThQ/v0a0qi7EuVi+Z135n3mw/O7j7oiO+3QWEgoj1hJNmnx0pd/Wd/7l6JYQtT9zKQhFWSS5sAFUa1Zs8kgP4Sg9yu1MfYcyt4bGIyVk1otz1rTRWLTybuLk7pfv9Pmr0Pm3+xt2Qlr9a+4gXhsKq7xf/sY+2M+G3b9e3p/8cqr4M32PWb6e9XZr9Dt6Ou3Ul9E+Wcm+FH4G1ZDq5bsTUPoL5OmevtIZqR5rThT6UbZV8fFFc/lzg9oacmXuO3/0A=="
RELAY_STATE = "/private/dossier?id=42&lang=fr é"


def _signer(directory: Path, **options) -> FileSigner:
    return FileSigner(*ensure_key_pair(directory=directory, common_name=directory.name, **options))


@pytest.fixture(scope="module")
def portal(tmp_path_factory) -> FileSigner:
    return _signer(tmp_path_factory.mktemp("portal"), key_size=2048)


@pytest.fixture(scope="module")
def attacker(tmp_path_factory) -> FileSigner:
    return _signer(tmp_path_factory.mktemp("attacker"), key_size=2048)


def signed_query(signer: FileSigner, *, relay_state: str | None = RELAY_STATE, message: str = "SAMLRequest",
                 algorithm: str = RSA_SHA256) -> str:
    params = [(message, SAML_REQUEST)]
    if relay_state is not None:
        params.append(("RelayState", relay_state))
    params.append(("SigAlg", algorithm))
    return sign_query(params=params, signer=signer)


def _private_key(directory: Path):
    return serialization.load_pem_private_key((directory / "signing.key").read_bytes(), password=None)


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("relay_state", [RELAY_STATE, None, ""])
@pytest.mark.parametrize("message", ["SAMLRequest", "SAMLResponse"])
def test_round_trip(portal, relay_state, message):
    query = signed_query(portal, relay_state=relay_state, message=message)
    names = [part.split("=")[0] for part in query.split("&")]
    assert names == [message, *(["RelayState"] if relay_state is not None else []), "SigAlg", "Signature"]
    verify_query(raw_query=query, certificates=[portal.certificate_pem])
    # Decoded values survive the trip.
    decoded = parse_qs(query, keep_blank_values=True)
    assert decoded[message] == [SAML_REQUEST]
    if relay_state:
        assert decoded["RelayState"] == [relay_state]


def test_stronger_algorithm_and_key_rollover(portal, attacker):
    query = signed_query(portal, algorithm=RSA_SHA512)
    verify_query(raw_query=query, certificates=[attacker.certificate_pem, portal.certificate_pem])
    with pytest.raises(InvalidSignature):
        verify_query(raw_query=query, certificates=[attacker.certificate_pem])


def test_ecdsa_round_trip_and_der_signatures(tmp_path):
    signer = _signer(tmp_path, key_type="ec")
    query = signed_query(signer, algorithm=ECDSA_SHA256)
    verify_query(raw_query=query, certificates=[signer.certificate_pem])
    # Some Java stacks send ASN.1 DER instead of r || s: accepted as well.
    signed_part = query.rsplit("&Signature=", 1)[0]
    der = _private_key(tmp_path).sign(signed_part.encode(), ec.ECDSA(hashes.SHA256()))
    verify_query(raw_query=f"{signed_part}&Signature={base64.b64encode(der).decode().replace('+', '%2B')}",
                 certificates=[signer.certificate_pem])


def test_components_are_verified_as_received_not_re_encoded(tmp_path):
    signer = _signer(tmp_path, key_size=2048)
    # An SP encoding with lower-case hex and an unencoded '/': the signed
    # octets are those, a re-encoding verifier would compute different ones.
    signed_part = ("SAMLRequest=abc%2bdef%3d&RelayState=/a%2fb%20c"
                   "&SigAlg=http%3a%2f%2fwww.w3.org%2f2001%2f04%2fxmldsig-more%23rsa-sha256")
    signature = _private_key(tmp_path).sign(signed_part.encode(), padding.PKCS1v15(), hashes.SHA256())
    query = f"{signed_part}&Signature={base64.b64encode(signature).decode().replace('+', '%2B').replace('/', '%2F')}"
    verify_query(raw_query=query, certificates=[signer.certificate_pem])


def test_received_parameter_order_does_not_matter(portal):
    parts = signed_query(portal).split("&")
    shuffled = "&".join([parts[3], parts[2], parts[0], parts[1]])  # Signature, SigAlg, SAMLRequest, RelayState
    verify_query(raw_query=shuffled, certificates=[portal.certificate_pem])
    verify_query(raw_query="?" + shuffled + "&utm_source=x", certificates=[portal.certificate_pem])


def test_unencoded_plus_in_signature_is_tolerated(portal):
    # A lax sender leaves '+' unencoded in Signature; it then reads as ' '.
    for attempt in range(50):
        signed_part, signature = signed_query(portal, relay_state=f"r{attempt}").rsplit("&Signature=", 1)
        if "%2B" in signature:
            break
    assert "%2B" in signature
    verify_query(raw_query=f"{signed_part}&Signature={signature.replace('%2B', '+')}",
                 certificates=[portal.certificate_pem])


# -- interoperability with pysaml2 ------------------------------------------------------


def test_pysaml2_redirect_signature_verifies(tmp_path):
    signer = _signer(tmp_path, key_size=2048)
    request = samlp.AuthnRequest(id="_req1", version="2.0", issue_instant="2024-05-01T10:00:00Z")
    info = http_redirect_message(
        request, "https://idp.example.test/sso", relay_state=RELAY_STATE, typ="SAMLRequest",
        sigalg=SIG_RSA_SHA256, sign=True, backend=RSACrypto(_private_key(tmp_path)),
    )
    location = dict(info["headers"])["Location"]
    verify_query(raw_query=urlsplit(location).query, certificates=[signer.certificate_pem])


def test_our_redirect_signature_verifies_with_pysaml2(portal):
    query = signed_query(portal)
    message = {name: values[0] for name, values in parse_qs(query).items()}
    assert verify_redirect_signature(message, RSACrypto(None), cert=portal.certificate_b64())


# -- refusals --------------------------------------------------------------------------


def test_tampered_relay_state_is_invalid(portal):
    query = signed_query(portal)
    tampered = query.replace("RelayState=%2Fprivate", "RelayState=%2Fpublic")
    assert tampered != query
    with pytest.raises(InvalidSignature):
        verify_query(raw_query=tampered, certificates=[portal.certificate_pem])


def test_dropped_relay_state_is_invalid(portal):
    parts = signed_query(portal).split("&")
    with pytest.raises(InvalidSignature):
        verify_query(raw_query="&".join([parts[0], parts[2], parts[3]]), certificates=[portal.certificate_pem])


def test_signature_over_another_order_is_invalid(tmp_path):
    signer = _signer(tmp_path, key_size=2048)
    parts = signed_query(signer).split("&")[:3]
    reordered = "&".join([parts[1], parts[0], parts[2]])  # RelayState first: not the spec's order
    signature = _private_key(tmp_path).sign(reordered.encode(), padding.PKCS1v15(), hashes.SHA256())
    encoded = base64.b64encode(signature).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    with pytest.raises(InvalidSignature):
        verify_query(raw_query=f"{reordered}&Signature={encoded}", certificates=[signer.certificate_pem])


@pytest.mark.parametrize("duplicate", ["RelayState=%2Fother", "SigAlg=x", "Signature=AAAA", "SAMLRequest=AAAA",
                                       "SAMLResponse=AAAA"])
def test_duplicated_parameters_are_refused(portal, duplicate):
    with pytest.raises(UnsafeSignature):
        verify_query(raw_query=signed_query(portal) + "&" + duplicate, certificates=[portal.certificate_pem])


def test_missing_signature(portal):
    unsigned = signed_query(portal).rsplit("&Signature=", 1)[0]
    with pytest.raises(MissingSignature):
        verify_query(raw_query=unsigned, certificates=[portal.certificate_pem])
    with pytest.raises(MissingSignature):
        verify_query(raw_query="SAMLRequest=abc&RelayState=x", certificates=[portal.certificate_pem])
    no_sigalg = "&".join(p for p in signed_query(portal).split("&") if not p.startswith("SigAlg="))
    with pytest.raises(MissingSignature):
        verify_query(raw_query=no_sigalg, certificates=[portal.certificate_pem])


def test_sha1_sigalg_is_refused_even_when_correctly_signed(tmp_path):
    signer = _signer(tmp_path, key_size=2048)
    signed_part = "SAMLRequest=abc&SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1"
    signature = _private_key(tmp_path).sign(signed_part.encode(), padding.PKCS1v15(), hashes.SHA1())
    encoded = base64.b64encode(signature).decode().replace("+", "%2B").replace("/", "%2F")
    with pytest.raises(UnsafeSignature):
        verify_query(raw_query=f"{signed_part}&Signature={encoded}", certificates=[signer.certificate_pem])


def test_malformed_queries_are_refused(portal):
    query = signed_query(portal)
    with pytest.raises(UnsafeSignature):  # not base64
        verify_query(raw_query=query.rsplit("&Signature=", 1)[0] + "&Signature=%25%25%25", certificates=[portal.certificate_pem])
    with pytest.raises(UnsafeSignature):  # no SAML message at all
        verify_query(raw_query="RelayState=x&SigAlg=y&Signature=AAAA", certificates=[portal.certificate_pem])
    with pytest.raises(UnsafeSignature):  # raw non-ASCII is not a URL-encoded query
        verify_query(raw_query=query.replace("RelayState=", "RelayState=é"), certificates=[portal.certificate_pem])
    with pytest.raises(InvalidSignature):
        verify_query(raw_query=query, certificates=[])


def test_sign_query_refuses_other_parameters_and_orders(portal):
    with pytest.raises(ValueError):
        sign_query(params=[("RelayState", "x"), ("SAMLRequest", "y"), ("SigAlg", RSA_SHA256)], signer=portal)
    with pytest.raises(ValueError):
        sign_query(params=[("SAMLRequest", "y"), ("Foo", "x"), ("SigAlg", RSA_SHA256)], signer=portal)
    with pytest.raises(ValueError):
        sign_query(params=[("SAMLRequest", "y"), ("SigAlg", RSA_SHA1)], signer=portal)
    # SigAlg may be left out: the signer's default is appended and signed.
    query = sign_query(params=[("SAMLResponse", "y")], signer=portal)
    assert "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature=" in query
    verify_query(raw_query=query, certificates=[portal.certificate_pem])
