"""``canasta demo``: a synthetic country served end to end over real HTTP.

It builds the registry, defines a fuel programme per vehicle and a food basket per
household, opens their cycles, issues cards, withdraws a few, starts ``canasta serve`` in a
child process and lets simulated outlets redeem concurrently, including retries, requests
over balance, withdrawn cards and reused idempotency keys. Then it reports and audits.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from canasta.adapters.db import transaction
from canasta.adapters.tables import cards, entitlements, households, programmes
from canasta.domain.card_token import sign_card
from canasta.domain.errors import CanastaError
from canasta.domain.model import (
    BeneficiaryKind,
    CardStatus,
    OutletKind,
    Programme,
    format_card_id,
    normalise_card_id,
)
from canasta.domain.quantity import format_milli, to_milli, to_units
from canasta.domain.receipt import LogReceipt, verify_receipt
from canasta.domain.signed_note import Verifier
from canasta.entrypoints.card_print import CardFormat, print_cards
from canasta.entrypoints.render import print_explanation
from canasta.entrypoints.synthetic import (
    FOOD_POLICY,
    FUEL_POLICY,
    SCHEMA,
    registrations,
    vehicles_and_outlets,
    write_registrations,
)
from canasta.outlet.client import OutletClient
from canasta.service import appeals as appeals_service
from canasta.service import audit as audit_service
from canasta.service import cards as card_service
from canasta.service import dedup as dedup_service
from canasta.service import offline as offline_service
from canasta.service import outlets as outlet_service
from canasta.service import portal as portal_service
from canasta.service import programmes as programme_service
from canasta.service import records as records_service
from canasta.service import registry as registry_service
from canasta.service import rules
from canasta.service import staff as staff_service
from canasta.service.authz import ROLE_TITLES, Role
from canasta.service.bootstrap import open_database
from canasta.service.card_tokens import card_payload
from canasta.service.keys import Keyring, key_directory
from canasta.service.portal import set_pin
from canasta.service.settings import Settings
from canasta.service.transparency import keyring_of
from canasta.service.verifier import HttpLog, LogReport, verify_log

#: Marks a directory the demo made, so a later demo may replace it (and no other).
MARKER = ".canasta-demo"
#: The registry as a registry would hand it over, imported and deduplicated by the demo.
REGISTRATIONS = "registrations.csv"
ACCOUNTS_FILE = "demo-accounts.txt"
#: The registry schema and the published policies, written where the user can read them.
RULE_FILES = {
    "schema.toml": SCHEMA,
    "fuel-v2.toml": FUEL_POLICY,
    "food-basket-v2.toml": FOOD_POLICY,
}

FUEL = Programme("fuel", "litre", BeneficiaryKind.VEHICLE, 30, quota_fixed=to_milli(60))
FOOD = Programme(
    "food-basket",
    "kg",
    BeneficiaryKind.HOUSEHOLD,
    30,
    quota_fixed=to_milli(4),
    quota_per_member=to_milli("2.5"),
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    households: int
    vehicles: int
    outlets: int
    directory: Path
    seconds: float
    concurrency: int
    seed: int


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    retries_checked: int = 0
    retries_mismatched: int = 0
    sent: int = 0
    scanned: int = 0  # redemptions sent with the card's scanned QR code instead of its id
    receipts: list[dict[str, Any]] = field(default_factory=list)  # the log receipts handed out


@dataclass(slots=True)
class Verified:
    receipts: int
    log: LogReport
    seconds: float
    key_file: Path


def run_demo(options: DemoOptions, console: Console) -> None:
    directory = options.directory
    db_file = directory / "canasta.db"
    if options.households < 10:
        raise CanastaError("the demo needs at least 10 households")
    if db_file.exists():
        if not (directory / MARKER).exists():
            raise CanastaError(
                f"{directory} holds a canasta database that no demo made; choose another --dir"
            )
        console.print(f"Replacing the previous demo in {directory}/")
        for old in directory.iterdir():
            if old.name.startswith("canasta.db") or old.name in (
                MARKER,
                "outlet-tokens.csv",
                REGISTRATIONS,
                "outlets",
                "server.log",
                ACCOUNTS_FILE,
                *RULE_FILES,
            ):
                shutil.rmtree(old) if old.is_dir() else old.unlink()  # canasta.db.keys is a directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by canasta demo; the next demo here replaces it\n")
    for name, text in RULE_FILES.items():
        (directory / name).write_text(text, encoding="utf-8")
    url = f"sqlite:///{db_file.resolve()}"
    engine = open_database(Settings.load(url))
    rng = random.Random(options.seed)
    console.rule("[bold]canasta demo")
    console.print(
        f"A synthetic country of {options.households:,} households, {options.vehicles:,} vehicles "
        f"and {options.outlets:,} outlets, in {directory}/"
    )
    with Progress(
        TextColumn("{task.description:<34}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        step = progress.add_task("Generating the registry", total=11)
        enrolment = registrations(options.households, options.seed, date.today())
        source = directory / REGISTRATIONS
        write_registrations(source, enrolment.rows)
        cars, places = vehicles_and_outlets(
            enrolment.households, options.vehicles, options.outlets, options.seed
        )
        progress.update(step, advance=1, description="Declaring the registry schema")
        rules.declare_schema(engine, SCHEMA, "schema.toml")
        progress.update(step, advance=1, description=f"Importing {REGISTRATIONS}")
        imported = registry_service.import_registrations_file(engine, source)
        progress.update(step, advance=1, description="Finding people registered twice")
        deduped = dedup_service.run(engine)
        progress.update(step, advance=1, description="Enrolling vehicles")
        registry_service.import_vehicles(engine, cars)
        progress.update(step, advance=1, description="Registering outlets")
        tokens = outlet_service.create_outlets(engine, places)
        progress.update(step, advance=1, description="Publishing policies")
        published = []
        for programme, name in ((FUEL, "fuel-v2.toml"), (FOOD, "food-basket-v2.toml")):
            programme_service.create_programme(engine, replace(programme))  # ids are set on it
            published.append(rules.publish_policy(engine, RULE_FILES[name], name))
        progress.update(step, advance=1, description="Running the cycles")
        summaries = [programme_service.run_cycle(engine, p.name, date.today()) for p in (FUEL, FOOD)]
        progress.update(step, advance=1, description="Issuing cards")
        issued = card_service.issue_missing_cards(engine)
        progress.update(step, advance=1, description="Withdrawing and reissuing lost cards")
        withdrawn = rng.sample(issued, max(1, len(issued) // 100))
        reissued = 0
        for n, card in enumerate(withdrawn):
            if n % 2 == 0:
                card_service.reissue_card(engine, card.card_id)
                reissued += 1
            else:
                card_service.withdraw_card(engine, card.card_id, CardStatus.REVOKED)
        progress.update(step, advance=1, description="Registry ready")
    _write_tokens(directory / "outlet-tokens.csv", tokens)
    rules_table = Table("programme", "published policy", "who is eligible", "entitled", "granted")
    for policy, summary, programme in zip(published, summaries, (FUEL, FOOD), strict=True):
        eligible = str(tomllib.loads(RULE_FILES[f"{programme.name}-v2.toml"])["description"])
        population = options.vehicles if programme.per is BeneficiaryKind.VEHICLE else imported.households
        rules_table.add_row(
            programme.name,
            f"v{policy.version} · {policy.sha256[:12]}",
            eligible,
            f"{summary.entitlements:,} of {population:,}",
            f"{to_units(summary.total):,f} {programme.unit}",
        )
    console.print(rules_table)
    console.print(
        f"Rules in {directory}/: schema.toml (what the registry may hold and why), fuel-v2.toml and "
        "food-basket-v2.toml (who gets how much); every entitlement names its policy and the facts it used."
    )
    console.print(
        f"Imported {imported.people:,} registrations in {imported.households:,} households from "
        f"{source}, through the same validation as `canasta registry import`."
    )
    console.print(
        f"Deduplication (Splink on DuckDB, model estimated on the registry itself) merged "
        f"{deduped.merged:,} registrations into the people they repeat, each merge a ledger entry "
        f"({enrolment.repeated:,} repeats were generated); {deduped.open_reviews:,} doubtful pairs "
        f"(twins, namesakes, shortened names) await a person: canasta registry review --reviewer NAME "
        f"--db {url}"
    )
    console.print(
        f"Issued {len(issued):,} cards; {len(withdrawn):,} withdrawn ({reissued:,} reported lost and "
        "reissued with their balance carried over)."
    )
    active = _active_cards(engine)
    withdrawn_ids = [c.card_id for c in withdrawn]
    keys = keyring_of(engine)
    sample_card = active["household"][0][0] if active["household"] else None
    printed = (
        [
            *print_cards(engine, keys, [sample_card], directory / "cards", CardFormat.SVG),
            *print_cards(engine, keys, [sample_card], directory / "cards", CardFormat.PNG),
        ]
        if sample_card
        else []
    )
    people = _people(engine, active, rng, directory)
    engine.dispose()

    port = _free_port()
    console.print(f"Starting the API on http://127.0.0.1:{port} …")
    log_file = (directory / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "canasta", "serve", "--db", url, "--port", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_ready(server, port, directory / "server.log")
        fuel_outlets = [(o.code, tokens[o.code]) for o in places if o.kind is OutletKind.FUEL_STATION]
        shop_outlets = [(o.code, tokens[o.code]) for o in places if o.kind is not OutletKind.FUEL_STATION]
        console.print(
            f"{options.concurrency} simulated outlet connections redeem for {options.seconds:g} s "
            "(with retries, requests over balance, withdrawn cards and reused keys)…"
        )
        started = time.perf_counter()
        tally = asyncio.run(
            _drive(
                "127.0.0.1",
                port,
                active,
                withdrawn_ids,
                fuel_outlets,
                shop_outlets,
                options,
                rng,
                keys,
            )
        )
        elapsed = time.perf_counter() - started
        _offline_outlets(console, f"http://127.0.0.1:{port}", url, directory, fuel_outlets, active, keys, rng)
        verified = _verify_publicly(console, f"http://127.0.0.1:{port}", tally, directory, url, rng)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log_file.close()
    _report(console, url, tally, elapsed, port, tokens, active, directory, verified, printed, people)


class _Network(httpx.BaseTransport):
    """An outlet's connection to the server, which the demo can cut."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("the network is down", request=request)
        return self.inner.handle_request(request)


def _offline_outlets(
    console: Console,
    base: str,
    url: str,
    directory: Path,
    fuel_outlets: list[tuple[str, str]],
    active: dict[str, list[tuple[str, int]]],
    keys: Keyring,
    rng: random.Random,
) -> None:
    """Three fuel stations run the outlet client, lose their connection, keep serving within
    their offline allowance, and sync when it comes back (docs/offline.md)."""
    chosen = fuel_outlets[:3]
    vehicles = [card for card, _ in active["vehicle"]]
    if not chosen or len(vehicles) < 10:
        return
    engine = open_database(Settings.load(url))
    try:
        offline_service.set_offline_share(engine, "fuel", "0.25")
        for code, _ in chosen:
            offline_service.set_daily_cap(engine, code, "fuel", "300")
        cars = rng.sample(vehicles, 10)
        scanned = {card: card_payload(engine, keys, card) for card in cars}
    finally:
        engine.dispose()
    console.rule("[bold]Outlets without a network")
    served: Counter[str] = Counter()
    clients = []
    for code, token in chosen:
        network = _Network()
        client = OutletClient.enrol(
            directory / "outlets" / code,
            base,
            code,
            token,
            httpx.Client(base_url=base, transport=network, timeout=5),
        )
        clients.append((code, client, network))
    for _code, client, network in clients:
        for card in rng.sample(cars, 2):
            served[client.redeem(scanned[card], "fuel", "5").mode] += 1
        network.down = True
        for card in rng.sample(cars, 5):
            served[client.redeem(scanned[card], "fuel", str(rng.choice((2, 3, 5, 8)))).mode] += 1
    console.print(
        f"{', '.join(code for code, _, _ in clients)} lost their connection and kept serving on their own: "
        f"{served['online']} redemptions online before, {served['offline']} offline within the allowance "
        f"(a quarter of an entitlement per card, 300 litre a day per station), {served['refused']} refused "
        "offline (over a cap, or nothing left)."
    )
    outcomes: Counter[str] = Counter()
    for _code, client, network in clients:
        network.down = False
        summary = client.sync()
        outcomes.update(summary.outcomes)
        client.close()
    console.print(
        "Back online, each synced its signed journal: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        + ". Each redemption is counted once; what a balance no longer covered is kept as a conflict "
        "for review (canasta outlets conflicts), never dropped."
    )


def _verify_publicly(
    console: Console, base: str, tally: Tally, directory: Path, url: str, rng: random.Random
) -> Verified:
    """What anyone can do with the public key alone: check a sample of the receipts handed
    out, and rebuild the whole log from its public endpoints and check every checkpoint."""
    key_file = key_directory(Settings.load(url).database_url) / "log.pub"
    verifiers = [Verifier.parse(key_file.read_text(encoding="utf-8"))]
    started = time.perf_counter()
    sample = rng.sample(tally.receipts, min(100, len(tally.receipts)))
    with console.status(f"Verifying {len(sample)} receipts and the whole log with the public key only…"):
        for found in sample:
            verify_receipt(LogReceipt.from_dict(found), verifiers)
        with httpx.Client(timeout=30) as client:
            report = verify_log(HttpLog(base, client), verifiers)
    if sample:
        (directory / "receipt-example.json").write_text(
            LogReceipt.from_dict(sample[0]).to_json(), encoding="utf-8"
        )
    return Verified(len(sample), report, time.perf_counter() - started, key_file)


@dataclass(frozen=True, slots=True)
class DemoPeople:
    """Who can sign in to the demo's pages: card holders with a PIN, and one staff account
    per role (all with the same password, drawn for this demo)."""

    cards: list[tuple[str, str]]
    accounts: list[str]
    password: str


def _people(
    engine: sa.Engine, active: dict[str, list[tuple[str, int]]], rng: random.Random, directory: Path
) -> DemoPeople:
    password = "-".join(secrets.token_hex(3) for _ in range(3))
    accounts = []
    for role in Role:
        username = role.value.replace("_", "-")
        staff_service.create_account(
            engine, username, f"{ROLE_TITLES[role].capitalize()} (demo)", role, password
        )
        accounts.append(username)
    cards = []
    for card_id, _ in active["household"][:2] + active["vehicle"][:1]:
        while True:
            pin = f"{rng.randrange(10**6):06d}"
            try:
                set_pin(engine, card_id, pin)
                break
            except CanastaError:  # a PIN too easy to guess: draw again
                continue
        cards.append((format_card_id(card_id), pin))
    lines = [f"card {c} PIN {p}" for c, p in cards] + [f"staff {a} password {password}" for a in accounts]
    (directory / ACCOUNTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DemoPeople(cards, accounts, password)


def _portal_story(engine: sa.Engine, people: DemoPeople) -> None:
    """Something to see in the portal: the first demo card's holder has appealed, and a
    programme officer has read the record to answer."""
    card_id = normalise_card_id(people.cards[0][0])
    appeals_service.file_appeal(
        engine,
        card_id,
        "data",
        "We are five at home since my mother moved in; the record says four.",
    )
    officer = staff_service.authenticate(engine, "programme-officer", people.password)
    home = portal_service.holder(engine, card_id).household_ref
    records_service.open_household(engine, officer, home, "Answering the holder's appeal")
    # A partner system asks through the registry API (DCI): its read is in the portal too.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from canasta.domain import dci_signature
    from canasta.domain.dci_query import parse_search
    from canasta.service import dci_search
    from canasta.service import partners as partner_service

    partner, _ = partner_service.register(
        engine,
        None,
        "Ministerio de Educación",
        "minedu",
        dci_signature.jwk(Ed25519PrivateKey.generate().public_key(), "")["x"],
        "k1",
        "Checking eligibility for school meals",
        ["household", "given_names", "birth_date"],
    )
    search = parse_search(
        {"search_criteria": {"query_type": "idtype-value", "query": {"type": "HOUSEHOLD_ID", "value": home}}}
    )
    dci_search.run(engine, partner, search, None, date.today())


def _write_tokens(path: Path, tokens: dict[str, str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["outlet", "token"])
        writer.writerows(sorted(tokens.items()))
    path.chmod(0o600)


def _active_cards(engine: sa.Engine) -> dict[str, list[tuple[str, int]]]:
    """kind → [(card id, remaining thousandths)] for active cards with an entitlement."""
    with transaction(engine, write=False) as conn:
        rows = conn.execute(
            sa.select(cards.c.id, cards.c.beneficiary_kind, entitlements.c.quantity)
            .join(
                entitlements,
                sa.and_(
                    entitlements.c.beneficiary_kind == cards.c.beneficiary_kind,
                    entitlements.c.beneficiary_id == cards.c.beneficiary_id,
                ),
            )
            .where(cards.c.status == "active")
        ).all()
    found: dict[str, list[tuple[str, int]]] = {"vehicle": [], "household": []}
    for row in rows:
        found[row.beneficiary_kind].append((row.id, int(row.quantity)))
    return found


def _examples(engine: sa.Engine, active: dict[str, list[tuple[str, int]]]) -> tuple[str, str, int]:
    """A household granted the food basket (the one whose card the demo prints), one that
    was not, and the first one's entitlement id."""
    card = active["household"][0][0] if active["household"] else ""
    with transaction(engine, write=False) as conn:
        mine = conn.execute(
            sa.select(households.c.ref, entitlements.c.id)
            .join(cards, cards.c.beneficiary_id == households.c.id)
            .join(
                entitlements,
                sa.and_(
                    entitlements.c.beneficiary_id == households.c.id,
                    entitlements.c.beneficiary_kind == "household",
                ),
            )
            .where(cards.c.id == card, cards.c.beneficiary_kind == "household")
            .limit(1)
        ).one_or_none()
        food = sa.select(entitlements.c.beneficiary_id).where(
            entitlements.c.beneficiary_kind == "household",
            entitlements.c.programme_id
            == sa.select(programmes.c.id).where(programmes.c.name == FOOD.name).scalar_subquery(),
        )
        refused = conn.scalar(
            sa.select(households.c.ref).where(households.c.id.not_in(food)).order_by(households.c.id).limit(1)
        )
    return (mine.ref if mine else ""), (refused or ""), (int(mine.id) if mine else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            message = log.read_text(errors="replace").strip()[-500:]
            raise CanastaError(f"the API server exited at start ({log}): {message}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise CanastaError("the API server did not start within 30 seconds")


async def _drive(
    host: str,
    port: int,
    active: dict[str, list[tuple[str, int]]],
    withdrawn: list[str],
    fuel_outlets: list[tuple[str, str]],
    shop_outlets: list[tuple[str, str]],
    options: DemoOptions,
    rng: random.Random,
    keys: Keyring,
) -> Tally:
    tally = Tally()
    today = datetime.now(UTC).date()
    done: list[tuple[str, dict[str, Any], dict[str, Any]]] = []  # token, body, receipt
    deadline = time.perf_counter() + options.seconds

    def pick() -> tuple[str, dict[str, Any], str]:
        roll = rng.random()
        if roll < 0.05 and done:
            token, body, _ = rng.choice(done)
            return "retry", body, token
        vehicle = rng.random() < 0.5
        card, entitled = rng.choice(active["vehicle" if vehicle and active["vehicle"] else "household"])
        programme = "fuel" if vehicle and active["vehicle"] else "food-basket"
        code, token = rng.choice(fuel_outlets if programme == "fuel" else shop_outlets)
        quantity = str(rng.randint(5, 20)) if programme == "fuel" else str(rng.randint(2, 6))
        kind = "normal"
        if roll < 0.09:
            quantity, kind = format_milli(entitled + 1000), "over-balance"
        elif roll < 0.12 and withdrawn:
            card, kind = rng.choice(withdrawn), "withdrawn"
        elif roll < 0.14 and done:
            token, old, _ = rng.choice(done)
            body = {**old, "quantity": str(int(float(old["quantity"])) + 1)}
            return "reused-key", body, token
        if kind == "normal" and rng.random() < 0.2:  # an outlet that scans the card's QR code
            card = sign_card(keys.issuer, card, today)
            tally.scanned += 1
        body = {
            "card": card,
            "programme": programme,
            "quantity": quantity,
            "outlet": code,
            "idempotency_key": uuid.uuid4().hex,
        }
        return kind, body, token

    first_receipt: dict[str, Any] = {}  # idempotency key → receipt

    async def worker() -> None:
        connection = _Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                kind, body, token = pick()
                sent = time.perf_counter()
                try:
                    status, content = await connection.post(
                        "/api/v1/redemptions", json.dumps(body).encode(), token
                    )
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    tally.outcomes[f"transport error ({type(exc).__name__})"] += 1
                    connection.close()
                    continue
                tally.latencies.append(time.perf_counter() - sent)
                tally.sent += 1
                answer = json.loads(content)
                if status == 201:
                    if kind == "retry":
                        tally.retries_checked += 1
                        original = first_receipt[body["idempotency_key"]]
                        if original["redemption_id"] != answer["redemption_id"]:
                            tally.retries_mismatched += 1
                        tally.outcomes["retried: same receipt, recorded once"] += 1
                    else:
                        done.append((token, body, answer))
                        first_receipt[body["idempotency_key"]] = answer
                        if answer.get("log_receipt"):
                            tally.receipts.append(answer["log_receipt"])
                        tally.outcomes["redeemed"] += 1
                else:
                    tally.outcomes[f"refused: {answer.get('title', status)} ({status})"] += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(options.concurrency)))
    return tally


class _Connection:
    """One outlet's keep-alive HTTP/1.1 connection: the least client that can drive the
    server hard from the same two cores (a general-purpose client spent more time per
    request than the server did)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(parts[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _report(
    console: Console,
    url: str,
    tally: Tally,
    elapsed: float,
    port: int,
    tokens: dict[str, str],
    active: dict[str, list[tuple[str, int]]],
    directory: Path,
    verified: Verified,
    printed: list[Path],
    people: DemoPeople,
) -> None:
    engine = open_database(Settings.load(url))
    _portal_story(engine, people)
    with transaction(engine, write=False) as conn:
        served = conn.execute(
            sa.select(
                entitlements.c.beneficiary_kind,
                sa.func.count(),
                sa.func.sum(entitlements.c.redeemed),
                programmes.c.unit,
            )
            .join(programmes, programmes.c.id == entitlements.c.programme_id)
            .where(entitlements.c.redeemed > 0)
            .group_by(entitlements.c.beneficiary_kind, programmes.c.unit)
        ).all()
    console.rule("[bold]What happened")
    table = Table("served", "beneficiaries", "handed out")
    for kind, count, total, unit in sorted(served):
        table.add_row(f"{kind}s", f"{count:,}", f"{to_units(int(total)):,f} {unit}")
    console.print(table)
    outcomes = Table("outcome", "requests")
    for outcome, count in tally.outcomes.most_common():
        outcomes.add_row(outcome, f"{count:,}")
    console.print(outcomes)
    lat = sorted(tally.latencies)
    if lat:

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))] * 1000:.1f} ms"

        console.print(
            f"Throughput: {tally.sent / elapsed:,.0f} requests/s over {elapsed:.1f} s "
            f"({tally.sent:,} requests). Latency p50 {pct(0.50)}, p90 {pct(0.90)}, p99 {pct(0.99)}."
        )
    if tally.retries_checked:
        verdict = (
            "all answered with their first receipt"
            if not tally.retries_mismatched
            else (f"[red]{tally.retries_mismatched} answered with a different receipt[/red]")
        )
        console.print(f"Retries: {tally.retries_checked:,}, {verdict}.")
    report = audit_service.run_audit(engine)
    granted, refused, entitlement = _examples(engine, active)
    console.rule("[bold]Why: explanations a beneficiary can read")
    if granted:
        print_explanation(console, rules.explain_beneficiary(engine, FOOD.name, granted))
    if refused:
        console.print()
        print_explanation(console, rules.explain_beneficiary(engine, FOOD.name, refused, language="es"))
    engine.dispose()
    if report.ok:
        console.print(
            f"[green]Audit passed[/green]: {report.entries:,} ledger entries chain correctly; "
            f"{report.redemptions:,} redemptions and {report.entitlements:,} entitlements reconcile; "
            f"{report.checkpoints:,} signed checkpoints match the log."
        )
    else:
        console.print(f"[red]Audit failed[/red]: {report.first}")
    console.rule("[bold]Verifiable by anyone")
    log = verified.log
    if log.ok:
        console.print(
            f"[green]Public verification passed[/green] with nothing but the log's public key "
            f"({verified.key_file}): {verified.receipts} receipts handed out to outlets verify, and "
            f"the whole log, rebuilt from its public endpoints ({log.leaves:,} leaves), matches all "
            f"{log.checkpoints:,} checkpoints it signed ({verified.seconds:.1f} s)."
        )
    else:
        console.print(f"[red]Public verification failed[/red]: {log.problems[0]}")
    if tally.scanned:
        console.print(f"{tally.scanned:,} redemptions were made by scanning the card's signed QR code.")
    if printed:
        console.print(f"A printable card, as SVG and PNG: {', '.join(str(p) for p in printed)}.")
    _, token = sorted(tokens.items())[0]
    card = active["household"][0][0] if active["household"] else ""
    console.rule("[bold]Browse it yourself")
    # Name the command as the user can run it: `canasta` when on PATH, else the venv's own.
    canasta = "canasta"
    if shutil.which("canasta") is None:
        canasta = str(Path(sys.executable).with_name("canasta"))
    console.print(f"  {canasta} serve --db {url} --port {port}", soft_wrap=True)
    console.print(
        f"  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/cards/{card}/balance",
        soft_wrap=True,
    )
    if entitlement:
        console.print(
            f"  curl -H 'Canasta-Card: {card}' "
            f"'http://127.0.0.1:{port}/api/v1/entitlements/{entitlement}/explanation?lang=es'",
            soft_wrap=True,
        )
    if refused:
        console.print(f"  {canasta} explain {FOOD.name} {refused} --db {url}", soft_wrap=True)
    console.print(
        f"  {canasta} policy diff published {directory}/food-basket-v2.toml --db {url}   "
        "# edit the file first",
        soft_wrap=True,
    )
    console.print(f"  {canasta} audit --db {url}", soft_wrap=True)
    if verified.receipts:
        console.print(
            f"  {canasta} verify receipt {directory}/receipt-example.json --key {verified.key_file}",
            soft_wrap=True,
        )
    console.print(f"  {canasta} verify log {url} --key {verified.key_file}", soft_wrap=True)
    console.rule("[bold]The portal and the staff pages")
    console.print(f"  Beneficiary portal: http://127.0.0.1:{port}/portal/", soft_wrap=True)
    for card_label, pin in people.cards:
        console.print(f"    card {card_label}  PIN {pin}", soft_wrap=True)
    console.print(
        "    (the first card's household has an appeal, a programme officer's read of its record, and a "
        "partner system's search through the registry API in its access log)",
        soft_wrap=True,
    )
    console.print(f"  Staff pages: http://127.0.0.1:{port}/staff/", soft_wrap=True)
    console.print(f"    user names {', '.join(people.accounts)}; password {people.password}", soft_wrap=True)
    console.print(f"  (also in {directory}/{ACCOUNTS_FILE}; start the server first, as above)")
    console.print(
        f"The API is described at http://127.0.0.1:{port}/docs; "
        f"outlet tokens are in {directory}/outlet-tokens.csv."
    )
