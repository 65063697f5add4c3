"""The eID test world, made once per test session: the sandbox PKI
(sandbox/eid), its OCSP responder over real HTTP, and SoftHSM2 cards (PIN
1234) in a SoftHSM2 configuration and token folder of this session's own.

The cards are used only through the card worker subprocess
(``sandbox.eid.cards.CardWorker``) and the ``sesame eid`` command: SoftHSM2
reads ``SOFTHSM2_CONF`` once per process, and this test process may load the
module for other tests (the HSM signer's) with another configuration.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.eid import webeid
from sandbox.eid import PEOPLE, PIN, OcspResponder, Pki
from sandbox.eid.cards import SOFTHSM_MODULE, CardWorker, make_cards, softhsm_available
from tests.live import HOST, free_port

ORIGIN = "http://idp.test"


@dataclass
class EidWorld:
    pki: Pki
    responder: OcspResponder
    conf: Path            # SOFTHSM2_CONF of the cards
    worker: CardWorker    # where this process's PKCS#11 calls on them run
    root_file: Path
    ca_file: Path
    directory: Path
    module: str = SOFTHSM_MODULE

    def settings(self, **extra) -> dict:
        """``[keys.eid]`` for this world; a short timeout, the test responder from the certificates' AIA."""
        return {"root_files": [str(self.root_file)], "intermediate_files": [str(self.ca_file)],
                "timeout_seconds": 2.0, **extra}

    def sign_with_card(self, slug: str, nonce: str, *, origin: str = ORIGIN, pin: str = PIN,
                       remove_midway: bool = False) -> dict:
        """The token the helper would give: the SoftHSM2 card signs through PKCS#11 after the PIN
        (or the card layer's error: ``{"error": ..., "tries": ...}``)."""
        return self.worker.sign(self.pki.issued[slug].person.nrn, origin=origin, nonce=nonce, pin=pin,
                                remove_midway=remove_midway)

    def sign_in_software(self, slug: str, nonce: str, *, origin: str = ORIGIN, algorithm: str = "ES384") -> dict:
        """A token for a certificate whose key the PKI kept (expired, unknown CA...): same format, same maths."""
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        from cryptography.hazmat.primitives.serialization import Encoding

        issued = self.pki.issued[slug]
        hash_type = webeid.HASHES[algorithm]
        der = issued.key.sign(webeid.signed_data(algorithm, origin, nonce), ec.ECDSA(hash_type()))
        r, s = decode_dss_signature(der)
        size = (issued.key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return webeid.encode(issued.certificate.public_bytes(Encoding.DER), algorithm, raw, "test/1.0")


@pytest.fixture(scope="session")
def eid_world(tmp_path_factory):
    if not softhsm_available():
        pytest.fail("SoftHSM2 missing: apt-get install softhsm2 (scripts/demo installs it)")
    directory = tmp_path_factory.mktemp("eid")
    port = free_port()
    pki = Pki(f"http://{HOST}:{port}")
    responder = OcspResponder(pki, HOST, port).start()
    cards = None
    try:
        for person in PEOPLE:
            if not person.on_card:
                pki.issue_software(person)
        cards = make_cards(directory / "softhsm", pki, [p for p in PEOPLE if p.on_card], keep_worker=True)
        root_file, ca_file = pki.write(directory / "trust")
        yield EidWorld(pki, responder, cards.conf, cards.worker, root_file, ca_file, directory)
    finally:
        if cards is not None:
            cards.worker.close()
        responder.stop()


@pytest.fixture
def responder(eid_world):
    """The OCSP responder, back to normal after each test that told it to misbehave."""
    eid_world.responder.mode = "normal"
    yield eid_world.responder
    eid_world.responder.mode = "normal"
