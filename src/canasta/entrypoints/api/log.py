"""The public transparency log over HTTP: keys, checkpoints, proofs, tiles and entries.

Nothing here needs a credential and nothing here says anything about a person: the log's
leaves are salted commitments. The tile and entry-bundle paths follow C2SP tlog-tiles
(``/log/v1/tile/<L>/<N>[.p/<W>]``, ``/log/v1/tile/entries/<N>[.p/<W>]``, with ``N`` written
in groups of three digits, ``x001/x234/067``), so tools written for that layout can read
canasta's log; proofs are also served whole for clients that would rather not fetch tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from canasta.domain.errors import CanastaError, NotFound
from canasta.domain.transparency import parse_tile_index
from canasta.entrypoints.receipt_print import render_receipt_svg
from canasta.service.cards import active_card
from canasta.service.transparency import MAX_LEAVES, LogView, encode_proof, keyring_of

MEDIA_NOTE = "text/plain; charset=utf-8"
_IMMUTABLE = {"cache-control": "public, max-age=31536000, immutable"}
_FRESH = {"cache-control": "no-cache"}


def log_router(view: LogView) -> APIRouter:
    router = APIRouter(prefix="/log/v1", tags=["transparency log"])

    @router.get("/key", response_class=PlainTextResponse)
    def key() -> PlainTextResponse:
        """The log's public key as a verifier line (``name+keyid+key``): all a verifier needs
        besides the log."""
        return PlainTextResponse(f"{keyring_of(view.engine).log.verifier}\n", headers=_IMMUTABLE)

    @router.get("/keys")
    def keys() -> dict[str, str]:
        """Both public keys: the log's (checkpoints) and the issuer's (cards, revocation list)."""
        return {role.value: str(verifier) for role, verifier in keyring_of(view.engine).verifiers().items()}

    @router.get("/checkpoint", response_class=PlainTextResponse)
    async def checkpoint() -> PlainTextResponse:
        """The latest signed checkpoint (C2SP checkpoint as a signed note)."""
        found = await run_in_threadpool(view.checkpoint)
        return PlainTextResponse(found.note, media_type=MEDIA_NOTE, headers=_FRESH)

    @router.get("/checkpoints")
    async def checkpoints(
        after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Only checkpoints of larger trees")] = 0,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    ) -> dict[str, Any]:
        """Every checkpoint the log has signed, smallest tree first, a page at a time: a
        verifier checks each against the tree it rebuilds."""
        found = await run_in_threadpool(view.checkpoints, after, limit)
        return {
            "checkpoints": [{"size": c.size, "signed_at": c.signed_at, "note": c.note} for c in found],
            "next_after": found[-1].size if len(found) == limit else None,
        }

    @router.get("/proof/inclusion")
    async def inclusion(
        index: Annotated[int, Query(ge=0, le=2**63 - 1, description="The leaf (ledger position - 1)")],
        size: Annotated[int, Query(ge=1, le=2**63 - 1, description="The tree size of a signed checkpoint")],
    ) -> dict[str, Any]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        proof = await run_in_threadpool(view.inclusion, index, size)
        return {"index": index, "size": size, "proof": encode_proof(proof)}

    @router.get("/proof/consistency")
    async def consistency(
        old: Annotated[int, Query(alias="from", ge=1, le=2**63 - 1)],
        new: Annotated[int, Query(alias="to", ge=1, le=2**63 - 1)],
    ) -> dict[str, Any]:
        """RFC 9162 consistency proof: the tree of ``from`` leaves is a prefix of that of ``to``."""
        proof = await run_in_threadpool(view.consistency, old, new)
        return {"from": old, "to": new, "proof": encode_proof(proof)}

    @router.get("/leaves", response_class=Response)
    async def leaves(
        start: Annotated[int, Query(ge=0, le=2**63 - 1, description="The first leaf")],
        count: Annotated[int, Query(ge=1, le=MAX_LEAVES, description="How many leaves")] = MAX_LEAVES,
    ) -> Response:
        """The leaves' data (each a 32-byte commitment) from ``start``, concatenated: the
        same bytes as the entry bundles, in one response (not part of tlog-tiles)."""
        data = await run_in_threadpool(view.leaves, start, count)
        return Response(data, media_type="application/octet-stream")

    @router.get("/tile/entries/{path:path}", response_class=Response)
    async def entries(path: str) -> Response:
        """An entry bundle: the commitments of 256 leaves (fewer for a partial bundle), each
        preceded by its length as two big-endian bytes."""
        index, width = parse_tile_index(path)
        data = await run_in_threadpool(view.entry_bundle, index, width)
        return Response(data, media_type="application/octet-stream", headers=_IMMUTABLE)

    @router.get("/tile/{level}/{path:path}", response_class=Response)
    async def tile(level: int, path: str) -> Response:
        """A tile: the 32-byte hashes at height 8·level of nodes N·256 onward."""
        if not 0 <= level <= 7:
            raise NotFound(f"there are no tiles at level {level}")
        index, width = parse_tile_index(path)
        data = await run_in_threadpool(view.tile, level, index, width)
        return Response(data, media_type="application/octet-stream", headers=_IMMUTABLE)

    return router


def receipt_router(view: LogView, units: Callable[[str], str | None]) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["redemptions"])

    @router.get(
        "/receipts/{ledger_position}",
        responses={
            200: {"content": {"image/svg+xml": {}}, "description": "The receipt (JSON, or ?format=svg)"}
        },
    )
    async def receipt(
        ledger_position: Annotated[int, Path(ge=1, le=2**63 - 1)],
        card: Annotated[
            str,
            Header(alias="Canasta-Card", description="The card the redemption was made with"),
        ],
        format: Annotated[
            Literal["json", "svg"], Query(description="json, or svg for an 80 mm printable slip")
        ] = "json",
    ) -> Any:
        """A redemption's log receipt again, proved against the latest checkpoint. Only for
        the card it was made with: the receipt holds the salt that opens the entry. As
        ``svg``, a printable slip whose QR code holds the same receipt."""
        try:
            card_id = (await run_in_threadpool(active_card, view.engine, card)).id
        except CanastaError:  # malformed, unknown or withdrawn: nothing to say about it
            raise NotFound(f"no receipt {ledger_position} for this card") from None
        found = await run_in_threadpool(view.receipt, ledger_position)
        if found.entry.kind != "redemption" or found.entry.body.get("card") != card_id:
            raise NotFound(f"no receipt {ledger_position} for this card")
        if format == "svg":
            return Response(
                render_receipt_svg(found, units(str(found.entry.body.get("programme")))),
                media_type="image/svg+xml",
            )
        return found.as_dict()

    return router
