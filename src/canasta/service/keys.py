"""canasta's signing keys and where they live.

- The **log key** signs the transparency log's checkpoints.
- The **issuer key** signs cards and the revocation list.

Both are Ed25519 and live in a key directory outside the database, so that whoever can
write to the database still cannot sign: a rewritten ledger cannot come with checkpoints
that verify. Each key is two files: ``<role>.key`` (PKCS#8 PEM, readable by its owner only)
and ``<role>.pub`` (the public verifier line, ``name+keyid+key``, to hand out). A database
remembers the public keys it was first used with and refuses a key directory that holds
other ones.

The key directory is ``CANASTA_KEYS`` when set; otherwise ``<database file>.keys`` beside an
SQLite database, and ``./canasta-keys`` for PostgreSQL.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from sqlalchemy.engine import make_url

from canasta.domain.errors import CanastaError
from canasta.domain.signed_note import BadNote, Signer, Verifier

ENV_KEYS = "CANASTA_KEYS"
ENV_LOG_ORIGIN = "CANASTA_LOG_ORIGIN"


class Role(StrEnum):
    LOG = "log"
    ISSUER = "issuer"
    #: Signs the registry API's answers and callbacks to partner systems (published as a JWKS).
    DCI = "dci"


class KeyProblem(CanastaError):
    """A key file that is missing, unreadable, or not this database's key."""

    code = "key-problem"


@dataclass(frozen=True, slots=True)
class Keyring:
    log: Signer
    issuer: Signer
    dci: Signer

    def verifiers(self) -> dict[Role, Verifier]:
        return {Role.LOG: self.log.verifier, Role.ISSUER: self.issuer.verifier, Role.DCI: self.dci.verifier}


def key_directory(database_url: str) -> Path:
    """Where the keys for ``database_url`` are kept (see the module's description)."""
    configured = os.environ.get(ENV_KEYS)
    if configured:
        return Path(configured).expanduser()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(f"{url.database}.keys")
    return Path("canasta-keys")


def load_keyring(directory: Path, *, create: bool = True) -> Keyring:
    """The keys in ``directory``, each created on first use when ``create`` is true."""
    return Keyring(
        log=_load_or_create(directory, Role.LOG, create),
        issuer=_load_or_create(directory, Role.ISSUER, create),
        # Made on first use also in a key directory from before the registry API.
        dci=_load_or_create(directory, Role.DCI, True),
    )


def _default_name(role: Role) -> str:
    origin = os.environ.get(ENV_LOG_ORIGIN)
    if origin:
        return origin if role is Role.LOG else f"{origin}/{role.value}"
    # A name of its own per installation, so two canasta logs never share an origin.
    return f"canasta-{secrets.token_hex(4)}.invalid/{role.value}"


def _load_or_create(directory: Path, role: Role, create: bool) -> Signer:
    key_file, pub_file = directory / f"{role.value}.key", directory / f"{role.value}.pub"
    if not key_file.exists():
        if not create:
            raise KeyProblem(f"there is no {role.value} key in {directory}")
        _create(directory, role, key_file, pub_file)
    try:
        private = load_pem_private_key(key_file.read_bytes(), password=None)
        verifier = Verifier.parse(pub_file.read_text(encoding="utf-8"))
    except FileNotFoundError as missing:
        raise KeyProblem(f"{missing.filename} is missing") from None
    except (ValueError, TypeError, BadNote) as error:
        raise KeyProblem(f"the {role.value} key in {directory} cannot be read: {error}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyProblem(f"{key_file} is not an Ed25519 key")
    signer = Signer(verifier.name, private)
    if signer.verifier != verifier:
        raise KeyProblem(f"{pub_file} is not the public half of {key_file}")
    return signer


def _create(directory: Path, role: Role, key_file: Path, pub_file: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Of two processes creating the keys at once, one creates and the other then reads.
    lock = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if key_file.exists():
            return
        private = Ed25519PrivateKey.generate()
        signer = Signer(_default_name(role), private)
        pub_file.write_text(f"{signer.verifier}\n", encoding="utf-8")
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        partial = directory / f".{role.value}.key.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, key_file)  # the key appears whole or not at all
    finally:
        os.close(lock)


def fixed_keyring(seed: bytes, name: str = "canasta.test") -> Keyring:
    """A keyring derived from ``seed``, for tests and benchmarks that need the same keys in
    every process without a key directory. Never for a real deployment."""

    def signer(role: Role) -> Signer:
        raw = hashlib.sha256(seed + role.value.encode()).digest()
        return Signer(f"{name}/{role.value}", Ed25519PrivateKey.from_private_bytes(raw))

    return Keyring(log=signer(Role.LOG), issuer=signer(Role.ISSUER), dci=signer(Role.DCI))
