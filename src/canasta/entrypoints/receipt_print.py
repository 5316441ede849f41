"""Printable receipts: an 80 mm slip, as SVG, for an outlet's receipt printer or a phone.

The slip says in words what was handed out, where and when, and carries the whole log
receipt (the entry, its salt, its leaf index, the inclusion proof and the signed checkpoint)
as a QR code of its compact JSON, the same ``canasta-receipt/1`` document the API answers
with. Whoever scans it can save the text as a file and run ``canasta verify receipt`` with
the log's public key; nothing else is needed. The slip names a card by its random id only.
"""

from __future__ import annotations

import html
import json

import segno

from canasta.domain.model import format_card_id
from canasta.domain.quantity import format_milli
from canasta.domain.receipt import LogReceipt
from canasta.entrypoints.card_print import dark_runs

WIDTH_MM = 80.0
_MARGIN = 4.0
_QR_MM = WIDTH_MM - 2 * _MARGIN
_SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"


def receipt_text(receipt: LogReceipt) -> str:
    """The compact JSON the slip's QR code holds."""
    return json.dumps(receipt.as_dict(), ensure_ascii=False, separators=(",", ":"))


def render_receipt_svg(receipt: LogReceipt, unit: str | None = None) -> str:
    """The slip of one log receipt. ``unit`` names the programme's unit (the entry records
    quantities in thousandths of it)."""
    entry = receipt.entry
    body = entry.body
    lines: list[tuple[float, str, bool]] = [(4.2, "canasta receipt", True)]
    if entry.kind == "redemption":
        quantity = body.get("quantity")
        amount = format_milli(int(quantity)) if isinstance(quantity, int) else str(quantity)
        card = str(body.get("card", ""))
        lines += [
            (3.4, f"{body.get('programme', '')}: {amount} {unit or ''}".rstrip(), True),
            (3.0, f"Card {format_card_id(card) if len(card) == 16 else card}", False),
            (3.0, f"Outlet {body.get('outlet', '')}", False),
        ]
    else:
        lines.append((3.4, entry.kind, True))
    lines += [
        (3.0, f"Time {entry.recorded_at}", False),
        (3.0, f"Ledger entry {entry.seq} · leaf {receipt.leaf_index}", False),
        (2.6, f"Entry hash {entry.entry_hash[:16]}…", False),
    ]
    qr = segno.make(receipt_text(receipt), error="L", micro=False, boost_error=False)
    matrix = qr.matrix
    modules = len(matrix) + 8  # with the 4-module quiet zone on each side
    scale = _QR_MM / modules
    y = _MARGIN
    parts: list[str] = []
    for size, text, bold in lines:
        y += size * 1.35
        weight = ' font-weight="bold"' if bold else ""
        parts.append(
            f'<text x="{_MARGIN:g}" y="{y:.2f}" font-size="{size:g}" font-family="{_SANS}"{weight}>'
            f"{html.escape(text)}</text>"
        )
    top = y + 2.0
    runs = [f"M{x + 4} {y + 4}h{n}v1h-{n}z" for y, x, n in dark_runs(matrix)]  # 4: the quiet zone
    parts.append(
        f'<path id="receipt-qr" transform="translate({_MARGIN:g} {top:.2f}) scale({scale:.5f})" '
        f'shape-rendering="crispEdges" d="{"".join(runs)}"/>'
    )
    y = top + _QR_MM + 1.0
    for text in (
        "Scan the code and keep the text: it proves this entry is in the",
        "public transparency log. Check it: canasta verify receipt FILE",
        "with the log's public key (GET /log/v1/key). No personal data.",
    ):
        y += 3.2
        parts.append(
            f'<text x="{_MARGIN:g}" y="{y:.2f}" font-size="2.4" font-family="{_SANS}">'
            f"{html.escape(text)}</text>"
        )
    height = y + _MARGIN
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_MM:g}mm" height="{height:.1f}mm" '
        f'viewBox="0 0 {WIDTH_MM:g} {height:.2f}">\n'
        f"<title>canasta receipt, ledger entry {entry.seq}</title>\n"
        f'<rect width="{WIDTH_MM:g}" height="{height:.2f}" fill="#fff"/>\n' + "\n".join(parts) + "\n</svg>\n"
    )
