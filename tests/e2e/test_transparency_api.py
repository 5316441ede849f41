"""The transparency log and signed cards over HTTP and from the command line: what an outlet,
a card holder and an outside verifier see."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import segno
import sqlalchemy as sa
from fastapi.testclient import TestClient

from canasta.domain.card_token import BadRevocationList, read_revocations
from canasta.domain.merkle import leaf_hash, verify_consistency, verify_inclusion
from canasta.domain.model import CardStatus, format_card_id
from canasta.domain.receipt import LogReceipt, commitment, verify_receipt
from canasta.domain.signed_note import Checkpoint, Verifier, open_note
from canasta.domain.transparency import parse_tile_index, tile_path
from canasta.entrypoints.cli import run
from canasta.entrypoints.receipt_print import receipt_text
from canasta.service import cards as card_service
from canasta.service.card_tokens import card_payload
from canasta.service.transparency import keyring_of
from canasta.service.verifier import HttpLog, _unbundle, verify_log, verify_receipt_file
from tests.helpers import World


def redeem(client: TestClient, world: World, key: str, card: str | None = None, **extra: Any) -> Any:
    body = {
        "card": card or format_card_id(world.vehicle_cards["AB0001"]),
        "programme": "fuel",
        "quantity": "1",
        "outlet": "fs-1",
        "idempotency_key": key,
    } | extra
    return client.post(
        "/api/v1/redemptions", json=body, headers={"Authorization": f"Bearer {world.tokens['fs-1']}"}
    )


def log_key(client: TestClient) -> Verifier:
    return Verifier.parse(client.get("/log/v1/key").text)


def test_every_receipt_verifies_and_the_log_proves_it_again(client: TestClient, world: World) -> None:
    receipts = [redeem(client, world, f"k{n}").json()["log_receipt"] for n in range(5)]
    key = log_key(client)
    for found in receipts:
        verify_receipt(LogReceipt.from_dict(found), [key])
    latest = Checkpoint.parse(open_note(client.get("/log/v1/checkpoint").text, [key]))
    assert latest.size == receipts[-1]["entry"]["seq"]
    for found in receipts:
        index = found["leaf_index"]
        proof = client.get("/log/v1/proof/inclusion", params={"index": index, "size": latest.size}).json()
        leaf = LogReceipt.from_dict(found)
        assert verify_inclusion(
            index,
            latest.size,
            leaf_hash(commitment(leaf.entry, leaf.salt)),
            [base64.b64decode(p) for p in proof["proof"]],
            latest.root,
        )
    first = Checkpoint.parse(open_note(receipts[0]["checkpoint"], [key]))
    proof = client.get("/log/v1/proof/consistency", params={"from": first.size, "to": latest.size}).json()
    assert verify_consistency(
        first.size, latest.size, first.root, latest.root, [base64.b64decode(p) for p in proof["proof"]]
    )
    pages = client.get("/log/v1/checkpoints", params={"after": 0, "limit": 3}).json()
    assert [c["size"] for c in pages["checkpoints"]] == [1, 2, 3] and pages["next_after"] == 3


def test_the_whole_log_verifies_over_http_and_so_does_a_receipt_against_it(
    client: TestClient, world: World
) -> None:
    for n in range(4):
        redeem(client, world, f"k{n}")
    found = redeem(client, world, "last").json()["log_receipt"]
    log = HttpLog("http://testserver", client)
    report = verify_log(log, [log_key(client)])
    assert report.ok, report.problems
    assert report.leaves == found["entry"]["seq"] and report.checkpoints == report.leaves  # one per batch
    # As from a host that serves only tlog-tiles: the same leaves from entry bundles.
    tiles_only = verify_log(HttpLog("http://testserver", client, bulk=False), [log_key(client)])
    assert (tiles_only.ok, tiles_only.leaves, tiles_only.checkpoints) == (
        True,
        report.leaves,
        report.checkpoints,
    )
    size = report.leaves
    leaves = client.get("/log/v1/leaves", params={"start": 1, "count": size - 1})
    assert leaves.content == b"".join(_unbundle(client.get(f"/log/v1/tile/entries/000.p/{size}").content)[1:])
    assert client.get("/log/v1/leaves", params={"start": 1, "count": size}).status_code == 404
    assert client.get("/log/v1/leaves", params={"start": 0, "count": 70_000}).status_code == 422
    redeem(client, world, "after")  # the log grows; the old receipt still verifies against it
    checked = verify_receipt_file(json.dumps(found), [log_key(client)], log)
    assert checked.latest_size == found["entry"]["seq"] + 1


def test_tiles_and_entry_bundles_follow_tlog_tiles(client: TestClient, world: World) -> None:
    for n in range(3):
        redeem(client, world, f"k{n}")
    size = Checkpoint.parse(open_note(client.get("/log/v1/checkpoint").text, [log_key(client)])).size
    tile = client.get(f"/log/v1/tile/0/000.p/{size}")
    assert tile.status_code == 200 and len(tile.content) == 32 * size
    assert tile.headers["cache-control"].endswith("immutable")
    bundle = client.get(f"/log/v1/tile/entries/000.p/{size}").content
    assert len(bundle) == 34 * size and bundle[:2] == b"\x00\x20"
    for bad in ("000", "0.p/1", "x000/001.p/1", "000.p/0", "000.p/256", f"000.p/{size + 1}", "abc"):
        assert client.get(f"/log/v1/tile/0/{bad}").status_code == 404, bad
    assert client.get("/log/v1/tile/9/000.p/1").status_code == 404


@pytest.mark.parametrize(
    ("index", "path"),
    [(0, "000"), (7, "007"), (1234, "x001/234"), (1234067, "x001/x234/067"), (1000, "x001/000")],
)
def test_tile_indexes_are_spelled_in_groups_of_three(index: int, path: str) -> None:
    assert tile_path(index) == path
    assert parse_tile_index(path) == (index, None)
    assert parse_tile_index(path + ".p/9") == (index, 9)


def test_a_receipt_is_fetched_again_only_with_its_card(
    client: TestClient, world: World, engine: sa.Engine
) -> None:
    made = redeem(client, world, "k1").json()
    card = made["card"]
    position = made["ledger_position"]
    again = client.get(f"/api/v1/receipts/{position}", headers={"Canasta-Card": card})
    assert again.status_code == 200
    assert again.json()["entry"] == made["log_receipt"]["entry"]
    other = format_card_id(world.vehicle_cards["AB0002"])
    assert client.get(f"/api/v1/receipts/{position}", headers={"Canasta-Card": other}).status_code == 404
    assert client.get("/api/v1/receipts/1", headers={"Canasta-Card": card}).status_code == 404  # a policy
    # A withdrawn card's id is public (the revocation list): it opens nothing any more.
    card_service.withdraw_card(engine, made["card"], CardStatus.LOST)
    assert client.get(f"/api/v1/receipts/{position}", headers={"Canasta-Card": card}).status_code == 404


def test_a_scanned_card_code_redeems_and_a_forged_one_is_refused(
    client: TestClient, world: World, engine: sa.Engine
) -> None:
    card = world.vehicle_cards["AB0001"]
    code = card_payload(engine, keyring_of(engine), card)
    ok = redeem(client, world, "scan-1", card=code)
    assert ok.status_code == 201 and ok.json()["card"] == format_card_id(card)
    other = world.vehicle_cards["AB0002"]
    forged = code.replace(card, other)  # another card's id under this card's signature
    refused = redeem(client, world, "scan-2", card=forged)
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/card-signature-invalid"


def test_the_revocation_list_is_signed_by_the_issuer(
    client: TestClient, world: World, engine: sa.Engine
) -> None:
    lost = world.vehicle_cards["AB0003"]
    card_service.withdraw_card(engine, lost, CardStatus.LOST)
    answer = client.get("/api/v1/cards/revocations")
    assert answer.status_code == 200
    issuer = Verifier.parse(client.get("/log/v1/keys").json()["issuer"])
    revoked = read_revocations(answer.text, [issuer])
    assert revoked.status_of(lost) == "lost"
    with pytest.raises(BadRevocationList, match="an issuer not known here"):
        read_revocations(answer.text, [log_key(client)])


def test_verify_from_the_command_line(
    client: TestClient, world: World, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = redeem(client, world, "k1").json()
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(made["log_receipt"]), encoding="utf-8")
    key = client.get("/log/v1/key").text.strip()
    assert run(["verify", "receipt", str(receipt), "--key", key]) == 0
    assert "Receipt verified" in capsys.readouterr().out
    key_file = tmp_path / "log.pub"
    key_file.write_text(key + "\n", encoding="utf-8")
    assert run(["verify", "log", database_url, "--key", str(key_file)]) == 0
    assert "Log verified" in capsys.readouterr().out
    changed = dict(made["log_receipt"], leaf_index=0)
    receipt.write_text(json.dumps(changed), encoding="utf-8")
    assert run(["verify", "receipt", str(receipt), "--key", key]) == 1
    assert "is leaf" in " ".join(capsys.readouterr().err.split())
    assert run(["verify", "receipt", str(receipt)]) == 1
    assert "--key" in " ".join(capsys.readouterr().err.split())
    out = tmp_path / "again.json"
    assert run(["log", "receipt", str(made["ledger_position"]), "--out", str(out), "--db", database_url]) == 0
    receipt.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
    assert run(["verify", "receipt", str(receipt), "--key", key]) == 0


def test_cards_print_from_the_command_line(
    world: World, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = world.household_cards["H1"]
    assert (
        run(
            [
                "cards",
                "print",
                card,
                "--format",
                "png",
                "--out",
                str(tmp_path / "cards"),
                "--db",
                database_url,
            ]
        )
        == 0
    )
    assert (tmp_path / "cards" / f"{card}.png").read_bytes().startswith(b"\x89PNG")
    assert run(["cards", "print", "--db", database_url]) != 0  # neither cards nor --all
    capsys.readouterr()


def test_a_printable_receipt_carries_the_whole_receipt_in_its_qr_code(
    client: TestClient, world: World
) -> None:
    made = redeem(client, world, "k1").json()
    slip = client.get(
        f"/api/v1/receipts/{made['ledger_position']}",
        params={"format": "svg"},
        headers={"Canasta-Card": made["card"]},
    )
    assert slip.status_code == 200 and slip.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(slip.text)  # noqa: S314 - our own output
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "fuel: 1 litre" in texts and f"Card {made['card']}" in texts
    (path,) = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("id") == "receipt-qr"]
    drawn = set()
    for x, y, n in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path.get("d", "")):
        drawn |= {(int(y) - 4, column - 4) for column in range(int(x), int(x) + int(n))}
    again = LogReceipt.from_dict(
        client.get(
            f"/api/v1/receipts/{made['ledger_position']}", headers={"Canasta-Card": made["card"]}
        ).json()
    )
    matrix = segno.make(receipt_text(again), error="L", micro=False, boost_error=False).matrix
    assert drawn == {(y, x) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    verify_receipt(LogReceipt.from_json(receipt_text(again)), [log_key(client)])
