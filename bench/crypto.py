"""Per-message cost of Sésame's in-process XML security (keys/): sign, verify,
encrypt, HTTP-Redirect signature check.  Median and p99 of N runs each, on a
real signed response as Sésame sends it.  Run: ``bench/crypto [--runs N]``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lxml import etree

from idp.saml.response import AssertionFacts, build_assertion, build_response
from keys import FileSigner, encrypt_element, ensure_key_pair, sign_query, verify_query, verify_xml

FAS100 = "urn:be:fedict:iam:fas:citizen:Level100"


def _response(assertion_id: str) -> bytes:
    facts = AssertionFacts(
        nameid="x" * 43, nameid_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        attributes={"surname": ["Dupont"], "givenName": ["Marie"], "birthDate": ["1985-03-14"],
                    "mail": ["marie.dupont@example.be"], "egovNRN": ["85031412302"], "PrefLanguage": ["fr"]},
        authn_instant=time.time(), session_index="s" * 22, context_class=FAS100)
    assertion = build_assertion(idp_entity_id="https://idp.example.be/saml/metadata",
                                sp_entity_id="https://portal.example.be/metadata",
                                acs_url="https://portal.example.be/acs", in_response_to="_req", facts=facts,
                                now=time.time(), lifetime=300, skew=120, assertion_id=assertion_id)
    return build_response(idp_entity_id="https://idp.example.be/saml/metadata", acs_url="https://portal.example.be/acs",
                          in_response_to="_req", now=time.time(), assertion=assertion)[1]


def _measure(runs: int, fn) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sesame-crypto-"))
    print(f"{'operation':<60}{'median ms':>10}{'p99 ms':>9}")
    for bits in (2048, 3072):
        key, cert = ensure_key_pair(directory=folder / str(bits), common_name="bench", key_size=bits)
        signer = FileSigner(key, cert)
        unsigned = _response("_a1")
        signed = signer.sign_xml(unsigned, reference_id="_a1")
        whole = signer.sign_xml(unsigned, reference_id=etree.fromstring(unsigned).get("ID"))
        rows = [
            (f"sign the assertion (RSA {bits})", lambda: signer.sign_xml(unsigned, reference_id="_a1")),
            (f"verify a signed response, strict rules (RSA {bits})",
             lambda: verify_xml(whole, certificates=[signer.certificate_pem])),
            (f"encrypt the signed assertion (AES-256-GCM, RSA-OAEP {bits})",
             lambda: encrypt_element(document=signed, element_id="_a1", certificate_pem=signer.certificate_pem)),
        ]
        query = sign_query(params=[("SAMLRequest", "fZBBb4MwDIX"), ("RelayState", "/x"),
                                   ("SigAlg", signer.default_algorithm)], signer=signer)
        rows.append((f"verify an HTTP-Redirect signature (RSA {bits})",
                     lambda: verify_query(raw_query=query, certificates=[signer.certificate_pem])))
        for label, fn in rows:
            median, p99 = _measure(args.runs, fn)
            print(f"{label:<60}{median:>10.3f}{p99:>9.3f}")
    print(f"\n{args.runs} runs each, one thread, on a {len(unsigned)}-byte response with six attributes.")


if __name__ == "__main__":
    main()
