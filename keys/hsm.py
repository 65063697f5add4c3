"""Sésame's own keys held in a PKCS#11 token (an HSM): they never leave it.

``HsmToken`` opens the token once per process through python-pkcs11 (a
maintained Cython binding, the one the design card names; PyKCS11, which the
eID key uses for card readers, exposes raw handles and no session objects).
``HsmSigner`` is a ``Signer`` whose private key stays on the token;
``HsmDecryptionKey`` opens RSA-OAEP key transports on the token and has the
``decrypt(ciphertext, padding.OAEP)`` method ``keys.xmldec.decrypt_element``
calls, so a caller decrypts with it as with a ``cryptography`` key.

Threads sign in parallel through a pool of sessions: a PKCS#11 session runs
one operation at a time, so each signature borrows a session for its
duration.  python-pkcs11 initialises the module with ``C_Initialize(NULL)``,
which tells the module that the application will not call it from several
threads (SoftHSM2 then disables its locks, and parallel signatures crash it);
``_load_module`` initialises it again with ``CKF_OS_LOCKING_OK`` before any
session is opened.

Errors at start are ``HsmError`` with a ``code`` (``hsm_module``,
``hsm_token``, ``hsm_pin``, ``hsm_key``, ``hsm_key_unfit``) and an operator
message that never contains the PIN.  Framework-free, like all of ``keys``.
"""
from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import queue
import threading
from pathlib import Path
from typing import Iterator, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from keys.algorithms import RSA_SHA256, RSA_SHA384, RSA_SHA512, RSA_SIGNATURES, SAML_ISSUER
from keys.signer import FileSigner, Signer, _element_with_id, _own_document

MIN_RSA_BITS = 2048
_CKF_OS_LOCKING_OK = 0x2


class HsmError(ValueError):
    """The token, its PIN or a key cannot be used; ``code`` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def read_pin(*, pin_file: str = "", pin_env: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The user PIN from a file (first line) or an environment variable, never from the TOML."""
    environ = os.environ if environ is None else environ
    if pin_file:
        try:
            pin = Path(pin_file).expanduser().read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise HsmError("hsm_pin", f"[hsm] pin_file {pin_file}: cannot read a PIN ({exc.__class__.__name__})") from None
    elif pin_env:
        pin = environ.get(pin_env, "").strip()
        if not pin:
            raise HsmError("hsm_pin", f"[hsm] pin_env: the environment variable {pin_env} is not set")
    else:
        raise HsmError("hsm_pin", "[hsm] needs pin_file or pin_env (the PIN is never written in the configuration)")
    if not pin:
        raise HsmError("hsm_pin", f"[hsm] pin_file {pin_file} is empty")
    return pin


_MODULES: dict[str, object] = {}
_MODULES_LOCK = threading.Lock()


class _InitArgs(ctypes.Structure):
    # CK_C_INITIALIZE_ARGS (PKCS#11 v2.40 §5.4): four mutex callbacks, flags, reserved.
    _fields_ = [("create_mutex", ctypes.c_void_p), ("destroy_mutex", ctypes.c_void_p),
                ("lock_mutex", ctypes.c_void_p), ("unlock_mutex", ctypes.c_void_p),
                ("flags", ctypes.c_ulong), ("reserved", ctypes.c_void_p)]


def _load_module(path: str):
    """The python-pkcs11 ``lib`` of ``path``, initialised for threads, once per process."""
    import pkcs11

    with _MODULES_LOCK:
        if path in _MODULES:
            return _MODULES[path]
        if not Path(path).is_file():
            raise HsmError("hsm_module", f"[hsm] module {path}: no such PKCS#11 library")
        try:
            lib = pkcs11.lib(path)
        except Exception as exc:  # a library that is not PKCS#11, or refuses to start
            raise HsmError("hsm_module", f"[hsm] module {path} cannot be loaded: {exc!r}") from None
        # Same handle as python-pkcs11's (dlopen counts references): finalise and
        # initialise again, this time allowing calls from several threads.
        so = ctypes.CDLL(path)
        so.C_Finalize.argtypes = [ctypes.c_void_p]
        so.C_Initialize.argtypes = [ctypes.c_void_p]
        if so.C_Finalize(None) != 0 or so.C_Initialize(ctypes.byref(_InitArgs(flags=_CKF_OS_LOCKING_OK))) != 0:
            raise HsmError("hsm_module", f"[hsm] module {path} does not accept multi-threaded use")
        _MODULES[path] = lib
        return lib


class HsmToken:
    """One token, logged in once, with a pool of ``pool_size`` sessions."""

    def __init__(self, *, module: str, token_label: str, pin: str, pool_size: int = 4) -> None:
        from pkcs11 import exceptions as e

        if not token_label:
            raise HsmError("hsm_token", "[hsm] token_label is empty")
        self.module, self.token_label = module, token_label
        lib = _load_module(module)
        try:
            self._token = lib.get_token(token_label=token_label)
        except e.NoSuchToken:
            raise HsmError("hsm_token", f"[hsm] no token labelled {token_label!r} in {module}") from None
        except e.MultipleTokensReturned:
            raise HsmError("hsm_token", f"[hsm] several tokens labelled {token_label!r} in {module}") from None
        except e.PKCS11Error as exc:  # anything else the module says: still one clear line
            raise HsmError("hsm_token", f"[hsm] token {token_label!r}: {exc.__class__.__name__}") from None
        try:
            # The login session is kept open: PKCS#11 logs the whole application in
            # and out with it, and the pool's sessions share that login.
            self._login = self._token.open(user_pin=pin, rw=True)
        except e.UserAlreadyLoggedIn:  # another HsmToken of this process logged in
            self._login = self._token.open(rw=True)
        except (e.PinIncorrect, e.PinInvalid, e.PinLenRange):
            raise HsmError("hsm_pin", f"[hsm] the PIN of token {token_label!r} is wrong") from None
        except e.PinLocked:
            raise HsmError("hsm_pin", f"[hsm] the PIN of token {token_label!r} is locked (too many wrong PINs)") from None
        except e.PKCS11Error as exc:
            raise HsmError("hsm_token", f"[hsm] cannot log in to token {token_label!r}: {exc.__class__.__name__}") from None
        self._pool: queue.LifoQueue = queue.LifoQueue()
        try:
            for _ in range(max(1, int(pool_size))):
                self._pool.put((self._token.open(rw=True), {}))
        except e.PKCS11Error as exc:
            raise HsmError("hsm_token", f"[hsm] cannot open {pool_size} sessions on token {token_label!r}: "
                                        f"{exc.__class__.__name__} (lower [hsm] pool_size)") from None

    @contextlib.contextmanager
    def session(self) -> Iterator[tuple[object, dict]]:
        """A session of the pool and its cache of key objects, for one operation."""
        item = self._pool.get()
        try:
            yield item
        finally:
            self._pool.put(item)

    def _key(self, cache: dict, session, object_class, label: str):
        found = cache.get((object_class, label))
        if found is None:
            from pkcs11 import exceptions as e

            try:
                found = session.get_key(object_class=object_class, label=label)
            except e.NoSuchKey:
                raise HsmError("hsm_key", f"[hsm] no {object_class.name.lower().replace('_', ' ')} "
                                          f"labelled {label!r} on token {self.token_label!r}") from None
            except e.MultipleObjectsReturned:
                raise HsmError("hsm_key", f"[hsm] several keys labelled {label!r} on token {self.token_label!r}") from None
            cache[(object_class, label)] = found
        return found

    def private_key(self, label: str):
        """Checks once that the private key ``label`` exists and fits; returns its size."""
        from pkcs11 import KeyType, ObjectClass

        with self.session() as (session, cache):
            key = self._key(cache, session, ObjectClass.PRIVATE_KEY, label)
            if key.key_type != KeyType.RSA:
                raise HsmError("hsm_key_unfit", f"[hsm] key {label!r} is {key.key_type.name}, not RSA")
            if key.key_length < MIN_RSA_BITS:
                raise HsmError("hsm_key_unfit", f"[hsm] key {label!r} has {key.key_length} bits, fewer than {MIN_RSA_BITS}")
            return key.key_length

    def public_key(self, label: str) -> rsa.RSAPublicKey:
        from pkcs11 import Attribute, ObjectClass

        with self.session() as (session, cache):
            key = self._key(cache, session, ObjectClass.PUBLIC_KEY, label)
            n, e = key[Attribute.MODULUS], key[Attribute.PUBLIC_EXPONENT]
        return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()

    def certificate_pem(self, label: str) -> bytes | None:
        """The certificate object stored on the token under ``label``, if any."""
        from pkcs11 import Attribute, ObjectClass

        with self.session() as (session, _):
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label}):
                return x509.load_der_x509_certificate(cert[Attribute.VALUE]).public_bytes(serialization.Encoding.PEM)
        return None

    def sign(self, label: str, data: bytes, mechanism) -> bytes:
        from pkcs11 import ObjectClass

        with self.session() as (session, cache):
            return self._key(cache, session, ObjectClass.PRIVATE_KEY, label).sign(data, mechanism=mechanism)

    def decrypt(self, label: str, data: bytes, mechanism, param) -> bytes:
        from pkcs11 import ObjectClass

        with self.session() as (session, cache):
            return self._key(cache, session, ObjectClass.PRIVATE_KEY, label).decrypt(
                data, mechanism=mechanism, mechanism_param=param)

    def generate_rsa(self, label: str, bits: int = 3072) -> None:
        """A new RSA key pair on the token: sensitive, never extractable."""
        from pkcs11 import Attribute, KeyType, ObjectClass

        if bits < MIN_RSA_BITS:
            raise HsmError("hsm_key_unfit", f"RSA keys of fewer than {MIN_RSA_BITS} bits are refused")
        with self.session() as (session, cache):
            if list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})):
                raise HsmError("hsm_key", f"[hsm] a key labelled {label!r} already exists on token {self.token_label!r}")
            session.generate_keypair(KeyType.RSA, bits, label=label, store=True, private_template={
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                Attribute.DECRYPT: True, Attribute.UNWRAP: True})

    def self_signed_certificate(self, label: str, *, common_name: str, days: int = 3650) -> bytes:
        """A self-signed certificate (PEM) for the token's key ``label``, signed on the token.

        SAML metadata trusts the certificate's key, not its issuer (metadata
        interoperability profile §2.4.1), so self-signed is what portals expect.
        ``cryptography`` builds the to-be-signed part (signed first with a
        throw-away key of the same type, for the algorithm identifier), then
        the token signs it and the DER is put together again."""
        public = self.public_key(label)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
        now = dt.datetime.now(dt.timezone.utc)
        throwaway = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        draft = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
                 .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                 .not_valid_after(now + dt.timedelta(days=days))
                 .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                 .sign(throwaway, hashes.SHA256()))
        from pkcs11 import Mechanism

        signature = self.sign(label, draft.tbs_certificate_bytes, Mechanism.SHA256_RSA_PKCS)
        algorithm = bytes.fromhex("300d06092a864886f70d01010b0500")  # sha256WithRSAEncryption, NULL
        der = _der(0x30, draft.tbs_certificate_bytes + algorithm + _der(0x03, b"\x00" + signature))
        certificate = x509.load_der_x509_certificate(der)
        public.verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM)


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _mechanisms():
    from pkcs11 import Mechanism

    return {RSA_SHA256: Mechanism.SHA256_RSA_PKCS, RSA_SHA384: Mechanism.SHA384_RSA_PKCS,
            RSA_SHA512: Mechanism.SHA512_RSA_PKCS}


class HsmSigner(Signer):
    """A ``Signer`` whose RSA private key ``key_label`` stays on ``token``.

    The certificate is the token's certificate object of the same label, else
    ``certificate_pem``; it must carry the token key's public half.  Checked
    at construction: a missing key, a key of another type or under 2048 bits,
    or a certificate of another key raise ``HsmError``."""

    def __init__(self, token: HsmToken, key_label: str, certificate_pem: bytes | None = None) -> None:
        if not key_label:
            raise HsmError("hsm_key", "no key label given for the token")
        self.token, self.key_label = token, key_label
        self.key_size = token.private_key(key_label)
        pem = certificate_pem or token.certificate_pem(key_label)
        if pem is None:
            raise HsmError("hsm_key", f"no certificate for key {key_label!r}: none on the token, none configured")
        self._certificate = x509.load_pem_x509_certificate(pem)
        public = token.public_key(key_label)
        if _spki(public) != _spki(self._certificate.public_key()):
            raise HsmError("hsm_key_unfit", f"the certificate does not match the token's key {key_label!r}")
        self._certificate_pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        self._certificate_b64 = self.certificate_b64()
        self._mechanisms = _mechanisms()

    @property
    def certificate_pem(self) -> bytes:
        return self._certificate_pem

    @property
    def default_algorithm(self) -> str:
        return RSA_SHA256

    def _check_algorithm(self, algorithm: str) -> None:
        if algorithm not in RSA_SIGNATURES:
            raise ValueError(f"algorithm {algorithm!r} does not fit this key")

    def sign_bytes(self, data: bytes, *, algorithm: str | None = None) -> bytes:
        algorithm = algorithm or self.default_algorithm
        self._check_algorithm(algorithm)
        return self.token.sign(self.key_label, data, self._mechanisms[algorithm])

    # The XML signature is FileSigner's own construction (same template, same
    # bytes signed), with this signer's sign_bytes: one definition of what
    # Sésame's signatures look like, whatever holds the key.
    sign_element = FileSigner.sign_element

    def sign_xml(self, xml, *, reference_id: str, insert_after_tag: str | None = SAML_ISSUER,
                 algorithm: str | None = None) -> bytes:
        root = _own_document(xml)
        target = _element_with_id(root, reference_id)
        self.sign_element(target, insert_after_tag=insert_after_tag, algorithm=algorithm)
        return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


class HsmDecryptionKey:
    """The token's RSA key ``key_label`` as ``keys.xmldec`` uses a private key:
    ``decrypt(ciphertext, padding.OAEP(...))`` (RSA-OAEP only: PKCS#1 v1.5
    key transport is refused upstream, and here)."""

    def __init__(self, token: HsmToken, key_label: str) -> None:
        self.token, self.key_label = token, key_label
        self.key_size = token.private_key(key_label)

    def decrypt(self, ciphertext: bytes, pad) -> bytes:
        from pkcs11 import MGF, Mechanism
        from pkcs11 import exceptions as e

        if not isinstance(pad, padding.OAEP):
            raise ValueError("only RSA-OAEP is accepted")
        hashes_ = {"sha1": (Mechanism.SHA_1, MGF.SHA1), "sha256": (Mechanism.SHA256, MGF.SHA256),
                   "sha384": (Mechanism.SHA384, MGF.SHA384), "sha512": (Mechanism.SHA512, MGF.SHA512)}
        digest = hashes_.get(pad.algorithm.name)
        mgf = hashes_.get(pad._mgf._algorithm.name)  # cryptography keeps the MGF1 hash here
        if digest is None or mgf is None:
            raise ValueError("OAEP digest not supported by the token")
        try:
            return self.token.decrypt(self.key_label, ciphertext, Mechanism.RSA_PKCS_OAEP,
                                      (digest[0], mgf[1], pad._label or None))
        except e.PKCS11Error:
            raise ValueError("decryption failed") from None  # what cryptography raises: no oracle


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
