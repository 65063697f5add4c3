"""Test eID cards on SoftHSM2: one token per card, PIN 1234, holding what a
Belgian card holds for authentication — a key pair made *on* the token (the
private key never leaves it) labelled ``Authentication`` (ID 0x02), its
certificate under the same label, and the ``CA`` and ``Root`` certificates.

SoftHSM2 reads ``SOFTHSM2_CONF`` once per process, when the module is first
initialised, and other parts of Sésame (the HSM signer and its tests) load the
same module with a configuration of their own.  So every PKCS#11 call on these
cards happens in a **card worker**: a subprocess (``python -m
sandbox.eid.cards``) started with this run's configuration and token folder
(never the system's), driven by one JSON line per request on its stdin.  The
worker uses ``adapters.eid.card``, the helper's own card layer: real PKCS#11,
real PIN.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from sandbox.eid import PIN, SO_PIN, Pki

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "BELPIC"
SECP384R1_OID = bytes.fromhex("06052b81040022")  # the CKA_EC_PARAMS of P-384 (DER OBJECT IDENTIFIER)
ROOT = Path(__file__).resolve().parents[2]


def softhsm_available() -> bool:
    return Path(SOFTHSM_MODULE).is_file() and shutil.which("softhsm2-util") is not None


def write_config(directory: Path) -> Path:
    """A SoftHSM2 configuration of its own, with its token folder, under ``directory``."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n", encoding="utf-8")
    return conf


def init_tokens(conf: Path, count: int) -> None:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for _ in range(count):
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", PIN,
                        "--so-pin", SO_PIN], env=env, check=True, capture_output=True, timeout=30)


class CardWorker:
    """The worker subprocess, one request at a time (a lock: tests call it from threads)."""

    def __init__(self, conf: Path, module: str = SOFTHSM_MODULE) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.eid.cards", module], cwd=ROOT, text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env={"SOFTHSM2_CONF": str(conf), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.lock = threading.Lock()

    def call(self, **request) -> dict:
        with self.lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the card worker stopped")
        return json.loads(line)

    def sign(self, nrn: str, *, origin: str, nonce: str, pin: str = PIN, remove_midway: bool = False) -> dict:
        """The token the helper would give (or ``{"error": code, "tries": ..., "detail": ...}``)."""
        return self.call(op="sign", nrn=nrn, origin=origin, nonce=nonce, pin=pin, remove_midway=remove_midway)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


@dataclass
class Cards:
    conf: Path                       # SOFTHSM2_CONF of these cards
    worker: CardWorker | None        # kept running when asked for (tests sign through it)


def make_cards(directory: Path, pki: Pki, people, module: str = SOFTHSM_MODULE, *, keep_worker: bool = False) -> Cards:
    """One SoftHSM2 token per person, each holding that person's card (keys made on the token,
    certificates from ``pki``)."""
    conf = write_config(directory)
    init_tokens(conf, len(people))
    worker = CardWorker(conf, module)
    try:
        for index, person in enumerate(people):
            made = worker.call(op="generate", index=index, rsa=person.rsa)
            issued = pki.issue(person, load_pem_public_key(made["public_key"].encode()))
            worker.call(op="store", index=index, certificates=[
                [label, key_id, base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]
                for label, key_id, cert in (("Authentication", 2, issued.certificate), ("CA", 3, pki.ca),
                                            ("Root", 4, pki.root))])
    except BaseException:
        worker.close()
        raise
    if not keep_worker:
        worker.close()
        worker = None
    return Cards(conf, worker)


# --- the worker's side (in its own process) ----------------------------------------------------
def _slots(lib, PyKCS11) -> list[int]:
    return [s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).flags & PyKCS11.CKF_TOKEN_INITIALIZED]


def _generate(session, PyKCS11, rsa_key: bool, label: str):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    common = [(PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_LABEL, label), (PyKCS11.CKA_ID, (2,))]
    private = common + [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_PRIVATE, True),
                        (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, False), (PyKCS11.CKA_SIGN, True)]
    if rsa_key:
        public = common + [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
                           (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_MODULUS_BITS, 2048),
                           (PyKCS11.CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01))]
        pub, _ = session.generateKeyPair(public, private + [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA)],
                                         mecha=PyKCS11.MechanismRSAGENERATEKEYPAIR)
        modulus, exponent = session.getAttributeValue(pub, [PyKCS11.CKA_MODULUS, PyKCS11.CKA_PUBLIC_EXPONENT])
        return rsa.RSAPublicNumbers(int.from_bytes(bytes(exponent), "big"),
                                    int.from_bytes(bytes(modulus), "big")).public_key()
    public = common + [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
                       (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_EC_PARAMS, SECP384R1_OID)]
    pub, _ = session.generateKeyPair(public, private + [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC)],
                                     mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
    point = bytes(session.getAttributeValue(pub, [PyKCS11.CKA_EC_POINT])[0])
    if point[0] == 0x04 and point[1] == len(point) - 2:  # DER OCTET STRING around the point
        point = point[2:]
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)


def _handle(request: dict, module: str) -> dict:
    import PyKCS11

    from adapters.eid import card as pkcs11

    lib = pkcs11.library(module)
    if request["op"] in ("generate", "store"):
        slot = _slots(lib, PyKCS11)[request["index"]]
        session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
        try:
            session.login(PIN)
            if request["op"] == "generate":
                public = _generate(session, PyKCS11, request["rsa"], pkcs11.KEY_LABEL)
                return {"public_key": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()}
            for label, key_id, der in request["certificates"]:
                cert = x509.load_der_x509_certificate(base64.b64decode(der))
                session.createObject([
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_CERTIFICATE), (PyKCS11.CKA_CERTIFICATE_TYPE, PyKCS11.CKC_X_509),
                    (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_LABEL, label), (PyKCS11.CKA_ID, (key_id,)),
                    (PyKCS11.CKA_SUBJECT, cert.subject.public_bytes()), (PyKCS11.CKA_VALUE, base64.b64decode(der))])
            return {"stored": True}
        finally:
            session.logout()
            session.closeSession()
    if request["op"] == "sign":
        card = next((c for c in pkcs11.cards(module) if c.nrn == request["nrn"]), None)
        if card is None:
            return {"error": pkcs11.NO_CARD}
        # "Pulled out mid-way": every session of the slot closed between the PIN and the signature.
        between = (lambda session: lib.closeAllSessions(card.slot)) if request.get("remove_midway") else None
        try:
            return pkcs11.authenticate(card, origin=request["origin"], nonce=request["nonce"], pin=request["pin"],
                                       module=module, between=between)
        except pkcs11.CardError as exc:
            return {"error": exc.code, "tries": exc.tries, "detail": exc.detail}
    return {"error": "unknown_op"}


def worker_main(module: str) -> None:
    for line in sys.stdin:
        print(json.dumps(_handle(json.loads(line), module)), flush=True)


if __name__ == "__main__":
    worker_main(sys.argv[1] if len(sys.argv) > 1 else SOFTHSM_MODULE)
