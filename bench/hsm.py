"""Signatures per second through a PKCS#11 token (SoftHSM2) vs the file key, same run.

A temporary SoftHSM2 token is made for the run (its own SOFTHSM2_CONF and
token folder, removed afterwards); an RSA key of the same size is generated on
the token and as a PEM file.  Each signer signs Sésame's response as the SSO
service does (``sign_element`` on a fresh response tree), on 1 thread then on
``--threads`` threads (the HSM signer's session pool lets them sign at once).
Run: ``bench/hsm [--seconds S] [--threads N] [--bits 2048]``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from lxml import etree

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def _rate(sign, seconds: float, threads: int) -> float:
    from bench.crypto import _response

    template = _response("_a" + "1" * 40)
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i):
        while time.perf_counter() < stop:
            root = etree.fromstring(template)
            sign(root)
            done[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--bits", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sesame-bench-hsm-") as folder:
        folder = Path(folder)
        (folder / "tokens").mkdir()
        conf = folder / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "87654321",
                        "--pin", "123456"], check=True, capture_output=True)
        from keys import FileSigner, ensure_key_pair
        from keys.hsm import HsmSigner, HsmToken

        token = HsmToken(module=MODULE, token_label="bench", pin="123456", pool_size=max(1, args.threads))
        token.generate_rsa("bench", args.bits)
        hsm = HsmSigner(token, "bench", token.self_signed_certificate("bench", common_name="bench"))
        key, cert = ensure_key_pair(directory=folder / "file", common_name="bench", key_size=args.bits)
        file_signer = FileSigner(key, cert)
        print(f"RSA-{args.bits}, SHA-256, a signed SAML response (sign_element), {args.seconds:.0f} s each")
        print(f"{'signer':<22}{'1 thread':>12}{f'{args.threads} threads':>14}   (signatures per second)")
        for name, signer in (("file key (FileSigner)", file_signer), ("SoftHSM2 (HsmSigner)", hsm)):
            one = _rate(lambda root: signer.sign_element(root), args.seconds, 1)
            many = _rate(lambda root: signer.sign_element(root), args.seconds, args.threads)
            print(f"{name:<22}{one:>12.0f}{many:>14.0f}")


if __name__ == "__main__":
    main()
