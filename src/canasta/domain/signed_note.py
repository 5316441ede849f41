"""Signed notes and checkpoints in the C2SP formats (transparency-dev's and Go's sumdb).

A *checkpoint* says what a log looked like: its origin, its size and its root hash, one per
line. A *signed note* is text followed by a blank line and one signature line per signer::

    canasta.example/log
    4203
    qJ3...base64 root hash...=

    — canasta.example/log Az3gW...base64(key id ‖ Ed25519 signature)...

The key id is the first four bytes of SHA-256(key name ‖ "\\n" ‖ 0x01 ‖ public key), 0x01
naming Ed25519. A verifier key is written ``name+hexkeyid+base64(0x01 ‖ public key)``, so
anyone can check a checkpoint with nothing but that line. Signatures by unknown keys are
ignored; a note verifies when at least one known key signed it and no known key's signature
is wrong.

This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from canasta.domain.errors import InvalidInput

ED25519 = 0x01
DASH = "\u2014 "  # an em dash and a space start every signature line


class BadNote(InvalidInput):
    """A note or checkpoint that is malformed or does not verify."""

    code = "bad-note"


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + _raw(public)).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise BadNote(f"a key name has no spaces or '+': {name!r}")


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    id: bytes
    public: Ed25519PublicKey

    @classmethod
    def of(cls, name: str, public: Ed25519PublicKey) -> Verifier:
        _check_name(name)
        return cls(name, key_id(name, public), public)

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """A verifier key line, ``name+hexid+base64key``."""
        parts = text.strip().split("+", 2)  # the base64 key may itself hold '+'
        if len(parts) != 3:
            raise BadNote("a verifier key is name+keyid+key")
        name, hex_id, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
            wanted = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise BadNote("a verifier key's id is hex and its key base64") from None
        if len(raw) != 33 or raw[0] != ED25519:
            raise BadNote("only Ed25519 verifier keys are known")
        public = Ed25519PublicKey.from_public_bytes(raw[1:])
        verifier = cls.of(name, public)
        if verifier.id != wanted:
            raise BadNote(f"the verifier key {name} does not match its key id")
        return verifier

    def __str__(self) -> str:
        return (
            f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([ED25519]) + _raw(self.public)).decode()}"
        )


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    private: Ed25519PrivateKey
    #: Derived once: a checkpoint is signed with every batch.
    verifier: Verifier = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "verifier", Verifier.of(self.name, self.private.public_key()))

    def sign(self, text: str) -> str:
        """``text`` (ending in a newline) as a note signed by this key."""
        if not text.endswith("\n") or "\n\n" in text:
            raise BadNote("a note's text ends with a newline and has no blank line")
        signature = self.private.sign(text.encode())
        line = base64.b64encode(self.verifier.id + signature).decode()
        return f"{text}\n{DASH}{self.name} {line}\n"


def open_note(note: str, verifiers: list[Verifier]) -> str:
    """The text of ``note`` if a known key signed it and no known key's signature fails;
    otherwise ``BadNote`` says why."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise BadNote("a signed note is text, a blank line, then signature lines")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    known = {(v.name, v.id): v for v in verifiers}
    verified = 0
    for line in lines:
        if not line.startswith(DASH):
            raise BadNote(f"not a signature line: {line[:40]!r}")
        name, _, encoded = line[len(DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise BadNote(f"the signature by {name} is not base64") from None
        if len(blob) < 5:
            raise BadNote(f"the signature by {name} is too short")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            continue
        try:
            verifier.public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise BadNote(f"the signature by {name} does not verify") from None
        verified += 1
    if not verified:
        raise BadNote("no known key signed this note")
    return text


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's size and root hash at one moment, as its origin states it."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise BadNote("a checkpoint is origin, size and root hash, one per line")
        origin, size, encoded, *extensions = lines[:-1]
        if not origin or not (size.isascii() and size.isdigit()) or (size != "0" and size.startswith("0")):
            raise BadNote("a checkpoint's size is a decimal number without leading zeros")
        try:
            root = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise BadNote("a checkpoint's root hash is base64") from None
        if len(root) != 32:
            raise BadNote("a checkpoint's root hash is 32 bytes")
        if any(not e for e in extensions):
            raise BadNote("a checkpoint has no empty lines")
        return cls(origin, int(size), root, tuple(extensions))
