"""Signed notes and checkpoints: what verifies, and every way a forgery fails."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.domain.merkle import leaf_hash, root
from canasta.domain.signed_note import BadNote, Checkpoint, Signer, Verifier, open_note

LOG = Signer("canasta.example/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = Signer("canasta.example/log", Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
HEAD = Checkpoint("canasta.example/log", 3, root([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]))


def test_a_checkpoint_round_trips_and_verifies_with_the_key_line_alone() -> None:
    note = LOG.sign(HEAD.text())
    key = Verifier.parse(str(LOG.verifier))
    assert Checkpoint.parse(open_note(note, [key])) == HEAD
    assert note.startswith("canasta.example/log\n3\n")
    assert "\n\n\u2014 canasta.example/log " in note


def test_a_changed_text_or_signature_fails() -> None:
    note = LOG.sign(HEAD.text())
    with pytest.raises(BadNote, match="does not verify"):
        open_note(note.replace("\n3\n", "\n4\n"), [LOG.verifier])
    name, _, blob = note.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    with pytest.raises(BadNote, match="does not verify"):
        open_note(f"{name} {base64.b64encode(bytes(raw)).decode()}\n", [LOG.verifier])


def test_a_note_signed_by_another_key_of_the_same_name_is_not_trusted() -> None:
    with pytest.raises(BadNote, match="no known key signed"):
        open_note(OTHER.sign(HEAD.text()), [LOG.verifier])


def test_unknown_cosigners_are_ignored_and_known_ones_all_checked() -> None:
    witness = Signer("witness.example", Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34))))
    note = LOG.sign(HEAD.text())
    cosigned = note + witness.sign(HEAD.text()).split("\n\n", 1)[1]
    assert open_note(cosigned, [LOG.verifier]) == HEAD.text()
    assert open_note(cosigned, [LOG.verifier, witness.verifier]) == HEAD.text()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("canasta.example/log\n3\n", "origin, size and root hash"),
        ("canasta.example/log\n03\nAAAA\n", "without leading zeros"),
        ("canasta.example/log\n3\nnot base64!\n", "is base64"),
        ("canasta.example/log\n3\nAAAA\n", "is 32 bytes"),
    ],
)
def test_malformed_checkpoints_are_named(text: str, reason: str) -> None:
    with pytest.raises(BadNote, match=reason):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("canasta.example/log+00000000+AAAA", "does not match its key id|only Ed25519"),
        ("canasta.example/log+zz+AAAA", "id is hex"),
        ("no-plus-signs", "name\\+keyid\\+key"),
    ],
)
def test_malformed_verifier_keys_are_named(line: str, reason: str) -> None:
    with pytest.raises(BadNote, match=reason):
        Verifier.parse(line)


def test_a_verifier_key_with_another_id_is_refused() -> None:
    name, _, key = str(LOG.verifier).split("+", 2)
    with pytest.raises(BadNote, match="does not match its key id"):
        Verifier.parse(f"{name}+00000000+{key}")


def test_notes_without_signatures_or_with_junk_lines_are_refused() -> None:
    with pytest.raises(BadNote, match="blank line"):
        open_note(HEAD.text(), [LOG.verifier])
    with pytest.raises(BadNote, match="not a signature line"):
        open_note(HEAD.text() + "\nhello\n", [LOG.verifier])
    with pytest.raises(BadNote, match="no blank line"):
        LOG.sign("a\n\nb\n")
