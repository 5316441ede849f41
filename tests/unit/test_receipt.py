"""Receipts: a salted leaf that reveals nothing, and a proof anyone can check with the key."""

import base64
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.domain.ledger import GENESIS_HASH, LedgerEntry
from canasta.domain.merkle import inclusion_proof, leaf_hash, root
from canasta.domain.receipt import BadReceipt, LogReceipt, commitment, new_salt, verify_receipt
from canasta.domain.redemption import Receipt
from canasta.domain.signed_note import Checkpoint, Signer

LOG = Signer("canasta.example/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def ledger(n: int) -> list[LedgerEntry]:
    entries, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        body = {"card": f"CARD{seq:012d}", "programme": "fuel", "quantity": 1000 * seq, "outlet": "fs-1"}
        entry = LedgerEntry.create(seq, "redemption", "2026-12-01T10:00:00.000000Z", body, prev)
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def issued(n: int = 6, index: int = 3) -> tuple[LogReceipt, list[bytes]]:
    entries = ledger(n)
    salts = [new_salt() for _ in entries]
    leaves = [leaf_hash(commitment(e, s)) for e, s in zip(entries, salts, strict=True)]
    head = Checkpoint("canasta.example/log", n, root(leaves))
    note = LOG.sign(head.text())
    receipt = LogReceipt(entries[index], salts[index], index, tuple(inclusion_proof(index, leaves)), note)
    return receipt, leaves


def test_a_receipt_verifies_with_the_public_key_alone_and_survives_json() -> None:
    receipt, _ = issued()
    again = LogReceipt.from_json(receipt.to_json())
    verified = verify_receipt(again, [LOG.verifier])
    assert verified.leaf_index == 3 and verified.checkpoint.size == 6 and verified.entry.seq == 4


def test_the_public_leaf_reveals_nothing_without_the_salt() -> None:
    entry = ledger(1)[0]
    assert commitment(entry, new_salt()) != commitment(entry, new_salt())
    with pytest.raises(ValueError, match="32 bytes"):
        commitment(entry, b"short")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["entry"]["body"].update(quantity=1), "does not match its own hash"),
        (lambda d: d.update(salt=base64.b64encode(new_salt()).decode()), "not at leaf 3"),
        (lambda d: d.update(leaf_index=2), "is leaf 3 of the log, not 2"),
        (lambda d: d["inclusion_proof"].pop(), "not at leaf 3"),
        (
            lambda d: d.update(checkpoint=d["checkpoint"].replace("\n6\n", "\n7\n")),
            "checkpoint does not verify",
        ),
        (lambda d: d.update(format="other"), "not a canasta-receipt/1 receipt"),
        (lambda d: d.pop("salt"), "malformed"),
    ],
)
def test_every_forgery_is_named(change: object, reason: str) -> None:
    receipt, _ = issued()
    data = json.loads(receipt.to_json())
    assert callable(change)
    change(data)
    with pytest.raises(BadReceipt, match=reason):
        verify_receipt(LogReceipt.from_json(json.dumps(data)), [LOG.verifier])


def test_a_receipt_from_another_log_key_is_refused() -> None:
    receipt, _ = issued()
    stranger = Signer("canasta.example/log", Ed25519PrivateKey.from_private_bytes(bytes(range(5, 37))))
    with pytest.raises(BadReceipt, match="no known key signed"):
        verify_receipt(receipt, [stranger.verifier])


def test_the_compact_text_is_the_same_receipt() -> None:
    receipt, _ = issued()
    assert json.loads(receipt.compact_json()) == receipt.as_dict()
    verify_receipt(LogReceipt.from_json(receipt.compact_json()), [LOG.verifier])
    lone, _ = issued(n=1, index=0)  # a proof with no hashes is an empty list
    assert json.loads(lone.compact_json())["inclusion_proof"] == []


def test_a_redemption_answer_splices_in_the_same_receipt() -> None:
    receipt, _ = issued()
    answer = Receipt(
        5, "K7Q2M9XD4R1TZP8C", "fuel", "litre", 12500, 27500, "fs-0042", "t", 5, "ab", log=receipt
    )
    assert json.loads(answer.to_json()) == answer.as_json()
    assert json.loads(replace(answer, log=None).to_json())["log_receipt"] is None
