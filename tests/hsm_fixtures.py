"""A SoftHSM2 token for the tests, made at run time in a temporary folder.

One per test session (``softhsm_token``): its own ``SOFTHSM2_CONF`` and
token directory, a user PIN written to a 0600 file, and these keys, made
before the PKCS#11 module is loaded in this process (SoftHSM2 reads its
tokens at ``C_Initialize``):

* ``sesame-signing``: RSA 2048, generated on the token by ``HsmToken`` (the
  code under test), its self-signed certificate signed on the token;
* ``small-rsa`` (RSA 1024) and ``ec-key`` (EC P-256), made by pkcs11-tool,
  for the "key of the wrong type or size" refusals.

Installs SoftHSM2 and OpenSC (pkcs11-tool) with apt when missing and root, like
the other Debian packages of the tests (``tests/services.py``); otherwise fails
(never skips) saying which package the machine lacks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "sesame-test"
PIN = "4711-sesame"
SO_PIN = "so-4711-sesame"
SIGNING_LABEL = "sesame-signing"


@dataclass(frozen=True)
class SoftHsm:
    module: str
    token_label: str
    pin: str
    pin_file: Path
    conf: Path
    signing_label: str
    signing_cert_file: Path

    def settings(self, **signing) -> dict:
        """``Services`` overrides: [signing] on this token, [hsm] with the PIN file."""
        return {"signing": {"backend": "hsm", "key_label": self.signing_label,
                            "cert_file": str(self.signing_cert_file), **signing},
                "hsm": {"module": self.module, "token_label": self.token_label, "pin_file": str(self.pin_file),
                        "pin_env": "", "pool_size": 4}}

    def toml(self) -> str:
        return (f'[signing]\nbackend = "hsm"\nkey_label = "{self.signing_label}"\ncert_file = "{self.signing_cert_file}"\n'
                f'[hsm]\nmodule = "{self.module}"\ntoken_label = "{self.token_label}"\npin_file = "{self.pin_file}"\n')

    def env(self) -> dict:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}


def _run(*argv: str, env: dict) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr or done.stdout}"


_MADE: list[SoftHsm] = []  # one token per process: the PKCS#11 module reads SOFTHSM2_CONF once


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory) -> SoftHsm:
    # Each test module imports this fixture, so pytest sees one per module: the first makes the token.
    if _MADE:
        return _MADE[0]
    from tests.services import ServiceUnavailable, _apt_install

    try:
        if not (Path(MODULE).is_file() and shutil.which("softhsm2-util")):
            _apt_install("softhsm2")
        if not shutil.which("pkcs11-tool"):
            _apt_install("opensc")
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    maps = Path("/proc/self/maps")
    if maps.exists() and "libsofthsm2" in maps.read_text():
        # SoftHSM2 reads SOFTHSM2_CONF once per process: a token made now would not be seen.
        pytest.fail("SoftHSM2 was loaded in this test process before softhsm_token (with another "
                    "SOFTHSM2_CONF): load it in a subprocess there, as sandbox/eid/cards.py does", pytrace=False)
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the module when this process loads it
    env = {**os.environ}
    _run("softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN, "--pin", PIN, env=env)
    for label, kind in (("small-rsa", "rsa:1024"), ("ec-key", "EC:prime256v1")):
        _run("pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login", "--pin", PIN,
             "--keypairgen", "--key-type", kind, "--label", label, env=env)
    pin_file = folder / "pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(PIN + "\n")

    from keys.hsm import HsmToken

    token = HsmToken(module=MODULE, token_label=TOKEN, pin=PIN, pool_size=2)
    token.generate_rsa(SIGNING_LABEL, 2048)
    cert_file = folder / "signing.crt"
    cert_file.write_bytes(token.self_signed_certificate(SIGNING_LABEL, common_name="Sésame test HSM key"))
    _MADE.append(SoftHsm(MODULE, TOKEN, PIN, pin_file, conf, SIGNING_LABEL, cert_file))
    return _MADE[0]
