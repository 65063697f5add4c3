"""Generation of the identity provider's own key pair.

The key pair is created at first start (``ensure_key_pair``) and is never
committed: ``*.key`` and ``*.crt`` are git-ignored.  The certificate is a
plain self-signed X.509 v3 certificate: in SAML metadata a certificate only
carries the public key (SAML V2.0 Metadata Interoperability Profile §2.4.1);
its validity dates and issuer are not evaluated by relying parties.
"""

from __future__ import annotations

import datetime
import os
import secrets
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KeyType = Literal["rsa", "ec"]


def generate_key_pair(
    *,
    common_name: str,
    days: int = 3650,
    key_size: int = 3072,
    key_type: KeyType = "rsa",
) -> tuple[bytes, bytes]:
    """Generate a key and a self-signed certificate.

    Returns ``(private key PEM, certificate PEM)``; the private key is PKCS#8,
    unencrypted (file permissions protect it; an HSM backend replaces it).
    ``key_type="ec"`` gives a P-256 key (``key_size`` is then ignored):
    much faster to sign with, but fewer service providers accept ECDSA.
    """
    if days < 1:
        raise ValueError("days must be positive")
    if key_type == "rsa":
        if key_size < 2048:
            raise ValueError("RSA keys shorter than 2048 bits are refused")
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=key_size
        )
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        # Positive, at most 159 bits (RFC 5280 §4.1.2.2).
        .serial_number(secrets.randbits(159) | 1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def ensure_key_pair(
    *,
    directory: Path,
    common_name: str,
    name: str = "signing",
    key_size: int = 3072,
    key_type: KeyType = "rsa",
) -> tuple[Path, Path]:
    """Create ``<name>.key`` and ``<name>.crt`` when missing, both mode 0600
    (``directory`` is created mode 0700 if it does not exist).

    Returns ``(key path, certificate path)``.  Existing files are never
    overwritten.  If only one of the two exists the state is inconsistent and
    ``FileExistsError`` is raised rather than guessing.  Meant to run once at
    start-up (or from the CLI) before workers load the key.
    """
    directory = Path(directory)
    key_path = directory / f"{name}.key"
    cert_path = directory / f"{name}.crt"
    have_key, have_cert = key_path.exists(), cert_path.exists()
    if have_key and have_cert:
        return key_path, cert_path
    if have_key or have_cert:
        raise FileExistsError(
            f"only one of {key_path.name} / {cert_path.name} exists in {directory}"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)  # an existing folder is left as its owner made it
    key_pem, cert_pem = generate_key_pair(
        common_name=common_name, key_size=key_size, key_type=key_type
    )
    # Write to private temporary names, then hard-link into place: a link
    # never overwrites, so two processes starting at once cannot end up with
    # different keys (the loser gets FileExistsError), and nobody ever reads
    # a half-written file.
    suffix = f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
    key_tmp, cert_tmp = key_path.with_name(key_path.name + suffix), cert_path.with_name(
        cert_path.name + suffix
    )
    try:
        _write_new(key_tmp, key_pem, mode=0o600)
        # The certificate is public, but it lives among secrets: one rule for the
        # whole folder (nothing in it readable by others) is easier to check.
        _write_new(cert_tmp, cert_pem, mode=0o600)
        os.link(key_tmp, key_path)
        os.link(cert_tmp, cert_path)
    finally:
        for tmp in (key_tmp, cert_tmp):
            tmp.unlink(missing_ok=True)
    return key_path, cert_path


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` (never wider) and write it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
