"""Printing signed cards and publishing the revocation list, on the real databases."""

import io
import re
import struct
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from canasta.adapters.tables import cards
from canasta.domain.card_token import CardExpired, read_card, read_revocations
from canasta.domain.errors import CardNotFound, CardRevoked, Conflict, InvalidInput
from canasta.domain.model import CardStatus, format_card_id
from canasta.entrypoints.card_print import QUIET_ZONE, print_cards, qr_code, render_png
from canasta.service import cards as card_service
from canasta.service.card_tokens import card_payload, printable_cards, revocation_list
from canasta.service.keys import fixed_keyring
from tests.helpers import build_world

KEYRING = fixed_keyring(b"card print tests")
KEYS = [KEYRING.issuer.verifier]
SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def issued_on(engine: sa.Engine, card_id: str) -> date:
    with engine.connect() as conn:
        issued_at = conn.scalar(sa.select(cards.c.issued_at).where(cards.c.id == card_id))
    return date.fromisoformat(str(issued_at)[:10])


def qr_modules(svg: str) -> list[list[int]]:
    """The QR code drawn in a card's SVG, read back from its path as a grid of modules."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    (path,) = [p for p in root.iter(f"{SVG}path") if p.get("id") == "qr"]
    runs = re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path.get("d", ""))
    assert "".join(f"M{x} {y}h{n}v1h-{n}z" for x, y, n in runs) == path.get("d")
    size = max(int(y) for _, y, _ in runs) + 1
    grid = [[0] * size for _ in range(size)]
    for x, y, n in runs:
        for column in range(int(x), int(x) + int(n)):
            grid[int(y)][column] = 1
    return grid


def test_an_active_cards_code_verifies_offline_with_its_issue_date(engine: sa.Engine) -> None:
    world = build_world(engine)
    card = world.household_cards["H2"]
    code = card_payload(engine, KEYRING, format_card_id(card).lower())
    token = read_card(code, KEYS, issued_on(engine, card))
    assert token.card_id == card
    assert token.issued_on == issued_on(engine, card)
    assert token.expires_on == token.issued_on.replace(year=token.issued_on.year + 5)


def test_svg_cards_hold_the_qr_code_of_the_signed_code_and_the_id(engine: sa.Engine, tmp_path: Path) -> None:
    world = build_world(engine)
    wanted = [world.household_cards["H1"], world.vehicle_cards["AB0001"]]
    out = tmp_path / "printed"
    written = print_cards(engine, KEYRING, wanted, out, "svg", programme_note="Fuel & food <pilot>")
    assert written == [out / f"{card}.svg" for card in wanted]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{card}.svg" for card in wanted)
    for card, path in zip(wanted, written, strict=True):
        svg = path.read_text(encoding="utf-8")
        root = ET.fromstring(svg)  # noqa: S314 - our own output
        assert (root.get("width"), root.get("height"), root.get("viewBox")) == (
            "85.6mm",
            "54mm",
            "0 0 85.6 54",
        )
        texts = [t.text for t in root.iter(f"{SVG}text")]
        assert format_card_id(card) in texts
        assert any(t and t.startswith("No personal data on this card") for t in texts)
        assert "Fuel &amp; food &lt;pilot&gt;" in svg
        day = issued_on(engine, card)
        assert f"Issued  {day.isoformat()}" in texts
        assert f"Expires {day.replace(year=day.year + 5).isoformat()}" in texts
        # The code drawn is the QR code of exactly this card's signed code.
        expected = [list(row) for row in qr_code(card_payload(engine, KEYRING, card)).matrix]
        assert qr_modules(svg) == expected


def test_png_cards_are_pngs_at_print_size(engine: sa.Engine, tmp_path: Path) -> None:
    world = build_world(engine)
    card = world.vehicle_cards["AB0002"]
    (path,) = print_cards(engine, KEYRING, [card], tmp_path / "png", "png")
    data = path.read_bytes()
    assert path.name == f"{card}.png"
    assert data.startswith(PNG_SIGNATURE)
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (1011, 638, 8, 0)  # 85.6 × 54 mm at 300 dpi, grey
    assert b"pHYs" in data and data.endswith(b"IEND\xaeB`\x82")


def test_the_png_qr_code_has_whole_pixel_modules_in_its_quiet_zone() -> None:
    code = "CN1.TEST"
    image = Image.open(io.BytesIO(render_png(code, "TEST", date(2026, 1, 1), date(2031, 1, 1))))
    assert image.mode == "L" and image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    matrix = qr_code(code).matrix
    module = round(36.0 / 25.4 * 300) // (len(matrix) + 2 * QUIET_ZONE)
    left = top = round(1.5 / 25.4 * 300) + QUIET_ZONE * module
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            pixel = image.getpixel((left + x * module + module // 2, top + y * module + module // 2))
            assert pixel == (0 if dark else 255)
    # the quiet zone is white
    band = {
        image.getpixel((x, top - 1)) for x in range(left - QUIET_ZONE * module, left + len(matrix) * module)
    }
    assert band == {255}


def test_every_active_card_is_printed_when_none_are_named(engine: sa.Engine, tmp_path: Path) -> None:
    world = build_world(engine)
    card_service.withdraw_card(engine, world.household_cards["H3"], CardStatus.REVOKED)
    active = {*world.household_cards.values(), *world.vehicle_cards.values()} - {world.household_cards["H3"]}
    written = print_cards(engine, KEYRING, None, tmp_path / "all", "svg")
    assert {p.stem for p in written} == active
    assert {c.card_id for c in printable_cards(engine, KEYRING, None)} == active


def test_a_withdrawn_card_is_refused_and_nothing_is_printed(engine: sa.Engine, tmp_path: Path) -> None:
    world = build_world(engine)
    lost = world.household_cards["H1"]
    card_service.withdraw_card(engine, lost, CardStatus.LOST)
    with pytest.raises(
        CardRevoked, match=rf"card {format_card_id(lost)} is lost; a withdrawn card is not printed"
    ):
        card_payload(engine, KEYRING, lost)
    out = tmp_path / "batch"
    with pytest.raises(CardRevoked):
        print_cards(engine, KEYRING, [world.household_cards["H2"], lost], out, "png")
    assert not out.exists()
    with pytest.raises(CardNotFound, match="was ever issued"):
        print_cards(engine, KEYRING, ["0000000000000000"], out, "svg")
    with pytest.raises(InvalidInput, match="printed as svg or png, not 'pdf'"):
        print_cards(engine, KEYRING, [world.household_cards["H2"]], out, "pdf")  # type: ignore[arg-type]
    assert not out.exists()


def test_printing_never_replaces_a_file_and_leaves_nothing_on_refusal(
    engine: sa.Engine, tmp_path: Path
) -> None:
    world = build_world(engine)
    first, second = world.household_cards["H1"], world.household_cards["H2"]
    out = tmp_path / "cards"
    out.mkdir()
    (out / f"{second}.svg").write_text("already printed", encoding="utf-8")
    with pytest.raises(Conflict, match=rf"{second}.svg already exists; nothing was written"):
        print_cards(engine, KEYRING, [first, second], out, "svg")
    assert sorted(p.name for p in out.iterdir()) == [f"{second}.svg"]  # no staging folder either
    assert (out / f"{second}.svg").read_text(encoding="utf-8") == "already printed"


def test_an_expired_card_is_not_printed(engine: sa.Engine, tmp_path: Path) -> None:
    world = build_world(engine)
    card = world.household_cards["H1"]
    late = issued_on(engine, card).replace(year=issued_on(engine, card).year + 6)
    with pytest.raises(CardExpired, match="expired on"):
        print_cards(engine, KEYRING, [card], tmp_path / "late", "svg", today=late)
    assert not (tmp_path / "late").exists()


def test_the_revocation_list_names_lost_and_revoked_cards_only(engine: sa.Engine) -> None:
    world = build_world(engine)
    lost, revoked = world.household_cards["H1"], world.vehicle_cards["AB0001"]
    before = read_revocations(revocation_list(engine, KEYRING, datetime.now(UTC)), KEYS)
    assert before.cards == {}
    card_service.withdraw_card(engine, lost, CardStatus.LOST)
    card_service.withdraw_card(engine, revoked, CardStatus.REVOKED)
    replacement = card_service.reissue_card(engine, lost)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    note = revocation_list(engine, KEYRING, now)
    revocations = read_revocations(note, KEYS)
    assert revocations.issuer == KEYRING.issuer.name and revocations.produced_at == now
    assert revocations.cards == {lost: CardStatus.LOST, revoked: CardStatus.REVOKED}
    assert revocations.status_of(replacement.id) is None
    # The replacement prints; the lost card does not.
    assert read_card(card_payload(engine, KEYRING, replacement.id), KEYS, issued_on(engine, replacement.id))
