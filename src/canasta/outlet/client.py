"""The outlet client: enrol, redeem online or offline, and sync (docs/offline.md).

Everything an outlet keeps lives in one directory:

* ``outlet.json``: the server's address, the outlet's code and its API token;
* ``journal.key``: the outlet's Ed25519 key (made here at enrolment, never sent);
* ``journal.db``: the journal (``canasta.outlet.journal``);
* ``offline.json``: the offline allowance and the card issuer's key, as last downloaded;
* ``revocations.txt``: the issuer's signed list of withdrawn cards, as last downloaded.

A redemption is written to the journal before anything else. Online, it is sent with the
journal's idempotency key; if the server cannot be reached (or answers 5xx), the client falls
back to offline on its own: only a scanned card code (its signature checked here, a typed id
cannot be), not withdrawn, within the allowance's two caps.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.domain.card_token import (
    BadRevocationList,
    CardExpired,
    CardNotYetValid,
    RevocationList,
    card_from_scan,
    looks_like_card_code,
    read_revocations,
)
from canasta.domain.errors import CanastaError, InvalidInput
from canasta.domain.model import format_card_id, normalise_card_id
from canasta.domain.offline import Allowance, OfflineLimit, public_key_text
from canasta.domain.quantity import format_milli, to_milli
from canasta.domain.signed_note import Verifier
from canasta.outlet.journal import Journal

#: Seconds to wait for the server before serving offline.
TIMEOUT = 3.0


class OutletError(CanastaError):
    code = "outlet"


@dataclass(frozen=True, slots=True)
class RedeemResult:
    #: online (the server recorded it), offline (handed out under the allowance, to sync),
    #: or refused (nothing to hand out)
    mode: str
    counter: int | None
    card: str
    programme: str
    quantity: int
    message: str
    remaining: str | None = None


@dataclass(frozen=True, slots=True)
class SyncSummary:
    sent: int
    outcomes: dict[str, int] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    waiting: int = 0


def _write_private(path: Path, data: bytes) -> None:
    _replace(path, data)
    os.chmod(path, 0o600)


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file, flushed to disk, then
    moved into place (a process killed mid-write leaves the old file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class OutletClient:
    def __init__(self, directory: Path, http: httpx.Client | None = None) -> None:
        self.directory = directory
        if not (directory / "outlet.json").is_file():
            raise OutletError(f"no outlet is enrolled in {directory}/; run 'canasta outlet enrol' first")
        config = json.loads((directory / "outlet.json").read_text(encoding="utf-8"))
        self.server: str = config["server"]
        self.code: str = config["outlet"]
        self._token: str = config["token"]
        key = serialization.load_pem_private_key((directory / "journal.key").read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise OutletError(f"{directory / 'journal.key'} is not an Ed25519 key")
        self._key = key
        self.journal = Journal(directory / "journal.db", self.code, key)
        self._http = http or httpx.Client(base_url=self.server, timeout=TIMEOUT)
        self._http.headers["Authorization"] = f"Bearer {self._token}"

    # -- setting up -------------------------------------------------------------------------

    @classmethod
    def enrol(
        cls, directory: Path, server: str, code: str, token: str, http: httpx.Client | None = None
    ) -> OutletClient:
        """Make the outlet's key, record it with the server, and download what offline
        service needs. The directory must not hold another outlet's journal."""
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / "outlet.json").exists():
            known = json.loads((directory / "outlet.json").read_text(encoding="utf-8"))
            if known.get("outlet") != code:
                raise OutletError(f"{directory} already holds outlet {known.get('outlet')!r}'s journal")
        key_path = directory / "journal.key"
        if not key_path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _write_private(key_path, pem)
        _write_private(
            directory / "outlet.json",
            json.dumps(
                {"server": server.rstrip("/"), "outlet": code, "token": token.strip()}, indent=2
            ).encode(),
        )
        client = cls(directory, http)
        answer = client._call("POST", f"/api/v1/outlets/{code}/enrol", json={"public_key": client.public_key})
        client._store_offline(answer)
        client._fetch_revocations()
        return client

    @property
    def public_key(self) -> str:
        return public_key_text(self._key.public_key())

    def refresh(self) -> None:
        """Download the allowance and the revocation list again."""
        self._store_offline(self._call("GET", f"/api/v1/outlets/{self.code}/allowance"))
        self._fetch_revocations()

    def _store_offline(self, answer: httpx.Response) -> None:
        body = answer.json()
        body["fetched_at"] = datetime.now(UTC).isoformat()
        _replace(self.directory / "offline.json", json.dumps(body, indent=2).encode("utf-8"))

    def _fetch_revocations(self) -> None:
        note = self._call("GET", "/api/v1/cards/revocations").text
        read_revocations(note, [self._issuer()])  # refuse to keep one that does not verify
        _replace(self.directory / "revocations.txt", note.encode("utf-8"))

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as down:
            raise OutletError(f"the server at {self.server} cannot be reached: {down}") from None
        if answer.status_code >= 400:
            raise OutletError(f"the server refused {method} {path}: {_detail(answer)}")
        return answer

    def reachable(self) -> bool:
        """Whether the server answers now (the cashier's page shows ONLINE or OFFLINE)."""
        try:
            return self._http.get("/api/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    # -- what offline service knows ---------------------------------------------------------

    def _offline(self) -> dict[str, Any]:
        path = self.directory / "offline.json"
        if not path.exists():
            return {"allowances": [], "issuer_key": None}
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def _issuer(self) -> Verifier:
        text = self._offline().get("issuer_key")
        if not text:
            raise OutletError("no issuer key is known here yet: enrol or refresh while online")
        return Verifier.parse(str(text))

    def allowance(self, programme: str) -> Allowance | None:
        for data in self._offline().get("allowances", []):
            if data.get("programme") == programme:
                return Allowance.from_dict(data)
        return None

    def _revocations(self) -> RevocationList | None:
        path = self.directory / "revocations.txt"
        if not path.exists():
            return None
        try:
            return read_revocations(path.read_text(encoding="utf-8"), [self._issuer()])
        except BadRevocationList:
            return None

    # -- redeeming --------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One redemption or sync at a time per outlet directory, across processes: a sync
        must not take a redemption still in flight in another process for a crashed one."""
        with (self.directory / "outlet.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def redeem(
        self, card_text: str, programme: str, quantity: str, now: datetime | None = None
    ) -> RedeemResult:
        with self._exclusive():
            return self._redeem(card_text, programme, quantity, now)

    def _redeem(self, card_text: str, programme: str, quantity: str, now: datetime | None) -> RedeemResult:
        at = (now or datetime.now(UTC)).astimezone(UTC)
        milli = to_milli(quantity)
        if milli <= 0:
            raise InvalidInput("the quantity must be positive")
        scanned = looks_like_card_code(card_text)
        dates = ""  # a card the outlet's own clock finds not yet or no longer valid
        try:
            card = card_from_scan(card_text, [self._issuer()], at.date())  # a typed id, or a code checked
        except (CardNotYetValid, CardExpired) as out_of_date:
            # The signature verified; the dates are the server's to judge online (the outlet's
            # clock may be wrong), and refuse the card offline.
            card, dates = normalise_card_id(card_text.split(".")[1]), out_of_date.message
        except CanastaError as bad:
            return RedeemResult("refused", None, card_text[:40], programme, milli, bad.message)
        revoked = self._revocations()
        status = revoked.status_of(card) if revoked is not None else None
        if status is not None:
            return RedeemResult(
                "refused", None, card, programme, milli, f"card {format_card_id(card)} is {status.value}"
            )
        allowance = self.allowance(programme)
        signed = self.journal.append(
            card,
            programme,
            milli,
            at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            allowance.cycle_id if allowance else None,
        )
        counter = signed.entry.counter
        body = {
            "card": card,
            "programme": programme,
            "quantity": format_milli(milli),
            "outlet": self.code,
            "idempotency_key": signed.entry.idempotency_key,
        }
        try:
            answer = self._http.post("/api/v1/redemptions", json=body)
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code in (200, 201):
            try:
                receipt = answer.json()
                remaining = receipt.get("remaining")
                fits = receipt.get("outlet") == self.code and to_milli(str(receipt.get("quantity"))) == milli
            except (ValueError, AttributeError, CanastaError):
                fits, remaining = False, None
            if answer.headers.get("idempotent-replayed") == "true" or not fits:
                # The server already had this journal key (a journal restored from a backup
                # or copied to a second till reuses counters), or the answer is not a receipt
                # of this redemption: nothing may be handed out on it.
                self.journal.settle(counter, "void")
                return RedeemResult(
                    "refused",
                    counter,
                    card,
                    programme,
                    milli,
                    f"the server's answer is not a new receipt for journal entry {counter}; "
                    "this outlet's journal may have been restored or copied: call support",
                )
            self.journal.settle(counter, "online")
            return RedeemResult(
                "online", counter, card, programme, milli, "recorded by the server", remaining
            )
        if answer is not None and 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
            self.journal.settle(counter, "void")
            return RedeemResult("refused", counter, card, programme, milli, _detail(answer))
        return self._offline_redeem(counter, card, programme, milli, scanned, allowance, at.date(), dates)

    def _offline_redeem(
        self,
        counter: int,
        card: str,
        programme: str,
        milli: int,
        scanned: bool,
        allowance: Allowance | None,
        today: date,
        dates: str,
    ) -> RedeemResult:
        def refuse(why: str) -> RedeemResult:
            self.journal.settle(counter, "void")
            return RedeemResult("refused", counter, card, programme, milli, f"OFFLINE: {why}")

        if not scanned:
            return refuse("scan the card's code; a typed card id cannot be checked without the server")
        if dates:
            return refuse(dates)
        if self._revocations() is None:
            return refuse("no verified list of withdrawn cards is kept here; sync while online first")
        if allowance is None:
            return refuse(f"{programme} cannot be redeemed offline at this outlet")
        if not allowance.starts_on <= today.isoformat() <= allowance.ends_on:
            return refuse(
                f"the offline allowance is for the cycle {allowance.starts_on} to {allowance.ends_on}"
            )
        try:
            allowance.check(
                milli,
                self.journal.offline_spent(card, programme, allowance.cycle_id),
                self.journal.day_spent(programme, today.isoformat()),
                None,
            )
        except OfflineLimit as limit:
            return refuse(limit.message)
        self.journal.settle(counter, "offline")
        left = allowance.card_cap(None) - self.journal.offline_spent(card, programme, allowance.cycle_id)
        return RedeemResult(
            "offline",
            counter,
            card,
            programme,
            milli,
            "OFFLINE: recorded here; it reaches the server at the next sync",
            # What this outlet knows of the balance offline: what the card may still take here.
            format_milli(max(left, 0)),
        )

    # -- syncing ----------------------------------------------------------------------------

    def sync(self, batch: int = 500) -> SyncSummary:
        """Send every settled entry not yet synced (a crash's pending ones first become
        void), in batches; each batch is taken whole or not at all by the server."""
        with self._exclusive():
            return self._sync(batch)

    def _sync(self, batch: int) -> SyncSummary:
        self.journal.void_pending()
        sent = 0
        outcomes: dict[str, int] = {}
        gaps: list[tuple[int, int]] = []
        while True:
            entries = self.journal.unsynced(batch)
            if not entries:
                break
            answer = self._call(
                "POST", f"/api/v1/outlets/{self.code}/sync", json={"entries": [e.as_dict() for e in entries]}
            )
            report = answer.json()
            self.journal.mark_synced(
                {int(o["counter"]): (str(o["outcome"]), o.get("ledger_position")) for o in report["outcomes"]}
            )
            for o in report["outcomes"]:
                outcomes[o["outcome"]] = outcomes.get(o["outcome"], 0) + 1
            gaps = [(int(a), int(b)) for a, b in report["gaps"]]
            sent += len(entries)
        return SyncSummary(sent, outcomes, gaps, self.journal.counts().get("waiting", 0))

    def status(self) -> dict[str, Any]:
        offline = self._offline()
        return {
            "outlet": self.code,
            "server": self.server,
            "journal": self.journal.counts(),
            "allowances": offline.get("allowances", []),
            "allowance_fetched_at": offline.get("fetched_at"),
        }

    def close(self) -> None:
        self.journal.close()
        self._http.close()


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail") or answer.text)
    except ValueError:
        return answer.text or f"HTTP {answer.status_code}"
