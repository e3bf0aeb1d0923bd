"""Server-side OPC UA security: the application certificate, the client trust list and users.

Secure by default: asyncua's server accepts every certificate and every user unless told
otherwise, so this module supplies what a real PLC has: its own certificate created on first
start (key 0600), a trust list folder that decides which client certificates may connect
(rejected ones are copied to `rejected/` so an operator can trust them), and a user directory
that accepts only configured users with PBKDF2-hashed or environment-supplied passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import socket
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 200_000
CERT_DAYS = 365 * 2


@dataclass(frozen=True)
class PkiLayout:
    """Folder layout of a PKI store (the layout OPC UA SDKs use: own/, trusted/, rejected/)."""

    root: Path

    @property
    def cert(self) -> Path:
        return self.root / "own" / "certs" / "cert.der"

    @property
    def key(self) -> Path:
        return self.root / "own" / "private" / "key.pem"

    @property
    def trusted(self) -> Path:
        return self.root / "trusted" / "certs"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected" / "certs"

    def create(self) -> None:
        for folder in (self.cert.parent, self.trusted, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        self.key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.key.parent, 0o700)


def ensure_certificate(pki: PkiLayout, app_uri: str, common_name: str, server: bool = True) -> tuple[Path, Path]:
    """Create the application certificate and key on first start; renew an expired certificate.

    The key is written 0600 and refused if anyone else can read it."""
    pki.create()
    if pki.key.exists():
        mode = pki.key.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(
                f"private key {pki.key} has mode {oct(mode)}; it must be readable by its owner only: "
                f"chmod 600 {pki.key}"
            )
        key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    else:
        key = cert_gen.generate_private_key()
        fd = os.open(pki.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_gen.dump_private_key_as_pem(key))
    renew = not pki.cert.exists()
    if not renew:
        cert = x509.load_der_x509_certificate(pki.cert.read_bytes())
        expired = cert.not_valid_after_utc < datetime.now(UTC) + timedelta(days=1)
        uri_ok = app_uri in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
        wrong_key = cert.public_key().public_numbers() != key.public_key().public_numbers()  # type: ignore[union-attr]  # both are RSA keys here (we create them)
        renew = expired or not uri_ok or wrong_key
        if renew:
            log.warning(
                "renewing application certificate %s (expired=%s, uri ok=%s, key match=%s)",
                pki.cert,
                expired,
                uri_ok,
                not wrong_key,
            )
    if renew:
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(app_uri),
            x509.DNSName("localhost"),
            x509.DNSName(socket.gethostname()),
            x509.IPAddress(ip_address("127.0.0.1")),
        ]
        usage = (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        cert = cert_gen.generate_self_signed_app_certificate(
            key,
            common_name,
            {"organizationName": "industrial-twin"},
            names,
            extended=usage,
            days=CERT_DAYS,
        )
        pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        log.info("created application certificate %s for %s", pki.cert, app_uri)
    return pki.cert, pki.key


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate file in DER or PEM."""
    data = path.read_bytes()
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        return x509.load_pem_x509_certificate(data)


def trust_certificate(pki: PkiLayout, cert_file: Path) -> Path:
    """Copy a peer's certificate (DER or PEM) into the trust list; returns the stored path."""
    cert = load_certificate(cert_file)
    pki.create()
    target = pki.trusted / f"{_cert_name(cert)}.der"
    target.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return target


def _cert_name(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in (str(cn[0].value) if cn else "cert"))
    return f"{label}_{cert.fingerprint(cert.signature_hash_algorithm or _sha256()).hex()[:16]}"


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


class TrustListValidator:
    """Client certificate validator over the PKI's trusted folder, re-read on every connect so a
    newly trusted certificate works without a restart. Rejected certificates are copied to
    `rejected/` with a log line that says how to trust them."""

    def __init__(self, pki: PkiLayout) -> None:
        self.pki = pki
        self.rejections = 0

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        try:
            if not any(self.pki.trusted.glob("*")):
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)  # empty trust list: nobody is trusted
            store = TrustStore([self.pki.trusted], [])
            await store.load()
            validator = CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store
            )
            await validator.validate(cert, app_description)
        except ServiceError:
            self.rejections += 1
            self.pki.rejected.mkdir(parents=True, exist_ok=True)
            saved = self.pki.rejected / f"{_cert_name(cert)}.der"
            saved.write_bytes(cert.public_bytes(serialization.Encoding.DER))
            log.warning(
                "rejected client certificate of %s (not in the trust list); to trust it run: plc-sim trust %s --pki %s",
                app_description.ApplicationUri,
                saved,
                self.pki.root,
            )
            raise


# ------------------------------------------------------------------------------------------ users
def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """PBKDF2-SHA256 hash in the form `pbkdf2_sha256$<iterations>$<salt>$<hash>` for users files."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _verify(stored: str, password: str) -> bool:
    if stored.startswith("pbkdf2_sha256$"):
        _, iterations, salt, digest = stored.split("$")
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(candidate, base64.b64decode(digest))
    return hmac.compare_digest(stored.encode(), password.encode())


class UserDirectory:
    """asyncua user manager: only configured users get in (role User, never Admin, so nobody can
    change the address space); anonymous only where explicitly allowed."""

    def __init__(self, users: dict[str, str], allow_anonymous: bool) -> None:
        self._users = dict(users)
        self.allow_anonymous = allow_anonymous
        self.denied = 0

    @property
    def has_users(self) -> bool:
        return bool(self._users)

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is None:  # anonymous token (X509 identity tokens are not offered)
            return User(role=UserRole.User, name="anonymous") if self.allow_anonymous else None
        stored = self._users.get(username or "")
        if stored is not None and password is not None and _verify(stored, password):
            return User(role=UserRole.User, name=username)
        self.denied += 1
        log.warning("denied OPC UA login for user %r", username)
        return None


def load_users(users_file: Path | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Users from `PLC_SIM_USER`/`PLC_SIM_PASSWORD` and/or a TOML file `[users] name = "<hash>"`."""
    env = os.environ if environ is None else environ
    users: dict[str, str] = {}
    if users_file is not None:
        try:
            raw = tomllib.loads(users_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read users file {users_file}: {exc}") from exc
        table = raw.get("users")
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(
                f'{users_file}: expected a [users] table of name = "pbkdf2_sha256$..." '
                "(make hashes with `plc-sim hash-password`)"
            )
        for name, stored in table.items():
            if not stored.startswith("pbkdf2_sha256$"):
                raise ValueError(
                    f"{users_file}: user {name!r} has no PBKDF2 hash; make one with `plc-sim hash-password`"
                )
        users.update(table)
    name, password = env.get("PLC_SIM_USER"), env.get("PLC_SIM_PASSWORD")
    if bool(name) != bool(password):
        raise ValueError("set both PLC_SIM_USER and PLC_SIM_PASSWORD, or neither")
    if name and password:
        users[name] = password
    return users
