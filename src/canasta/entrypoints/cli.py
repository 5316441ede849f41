"""``canasta``: the operator's command line.

Every command takes ``--db URL`` (or ``CANASTA_DATABASE_URL``; default: ``canasta.db`` in
the working directory). Errors are one clear sentence and exit status 1; ``--debug`` shows
the traceback too.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from canasta import __version__
from canasta.adapters import migrate
from canasta.adapters.db import make_engine
from canasta.domain.errors import CanastaError, ImportRejected, InvalidInput
from canasta.domain.model import (
    BeneficiaryKind,
    CardStatus,
    Outlet,
    OutletKind,
    Programme,
    format_card_id,
)
from canasta.domain.quantity import format_milli, to_milli
from canasta.domain.signed_note import BadNote, Verifier
from canasta.entrypoints.card_print import CardFormat, print_cards
from canasta.entrypoints.receipt_print import render_receipt_svg
from canasta.entrypoints.render import print_explanation
from canasta.linkage.model import Thresholds
from canasta.outlet.client import OutletClient
from canasta.policy.language import PolicyRejected
from canasta.service import audit as audit_service
from canasta.service import cards as card_service
from canasta.service import dedup as dedup_service
from canasta.service import offline as offline_service
from canasta.service import outlets as outlet_service
from canasta.service import programmes as programme_service
from canasta.service import registry as registry_service
from canasta.service.bootstrap import open_database
from canasta.service.card_tokens import revocation_list
from canasta.service.settings import ENV_DATABASE_URL, Settings
from canasta.service.transparency import LogView, keyring_of
from canasta.service.verifier import DatabaseLog, HttpLog, LogSource, verify_log, verify_receipt_file

console = Console(highlight=False)
# Errors are never wrapped: a path or a row reference must stay whole to be copied.
err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="canasta",
    help="Run the distribution of rationed goods and benefits: registry, programmes, cycles, "
    "cards, outlets and an auditable ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Create and upgrade the database.", no_args_is_help=True)
registry_app = typer.Typer(help="Enrol households, people and vehicles.", no_args_is_help=True)
programmes_app = typer.Typer(help="Define programmes (what is handed out, how much).", no_args_is_help=True)
cycles_app = typer.Typer(help="Run, open and close a programme's cycles.", no_args_is_help=True)
policy_app = typer.Typer(
    help="Check, preview, publish and show the rules (policies) that decide who gets how much.",
    no_args_is_help=True,
)
report_app = typer.Typer(help="Coverage and uptake reports from report definitions.", no_args_is_help=True)
outlets_app = typer.Typer(help="Register outlets and their API tokens.", no_args_is_help=True)
cards_app = typer.Typer(help="Issue, withdraw and reissue cards.", no_args_is_help=True)
outlet_app = typer.Typer(
    help="What an outlet runs: enrol, redeem (offline when the network is down), sync.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(programmes_app, name="programmes")
app.add_typer(cycles_app, name="cycles")
app.add_typer(cycles_app, name="cycle", hidden=True)  # `canasta cycle run` reads naturally too
app.add_typer(policy_app, name="policy")
app.add_typer(report_app, name="report")
app.add_typer(outlets_app, name="outlets")
app.add_typer(cards_app, name="cards")
app.add_typer(outlet_app, name="outlet")
verify_app = typer.Typer(
    help="Check receipts and the transparency log with nothing but the public key.", no_args_is_help=True
)
log_app = typer.Typer(help="The transparency log: checkpoints, keys, receipts.", no_args_is_help=True)
app.add_typer(verify_app, name="verify")
app.add_typer(log_app, name="log")

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=ENV_DATABASE_URL,
        help="Database URL (sqlite:///file.db or postgresql://…); default: ./canasta.db",
        show_envvar=True,
    ),
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        console.print(f"canasta {__version__}")
        raise typer.Exit()


def _progress() -> Progress:
    """The progress display of long work: what it is doing, a bar, how far, how long."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for long work; the work reports ``(done, total)`` rows as it goes
    (until it does, the bar pulses: reading and checking come before storing)."""
    with _progress() as progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def _engine(db: str | None) -> sa.Engine:
    return open_database(Settings.load(db))


# ---------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(db: Db = None) -> None:
    """Create the database, or apply new migrations to it; stored data is kept."""
    settings = Settings.load(db)
    engine = make_engine(settings.database_url)
    try:
        before, after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"Database already at schema {after}.")
    else:
        console.print(f"Database upgraded from schema {before or '(empty)'} to {after}.")


@db_app.command("status")
def db_status(db: Db = None) -> None:
    """Show the database's schema revision and whether it is current."""
    settings = Settings.load(db)
    engine = make_engine(settings.database_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "current" if current == head else "needs 'canasta db upgrade'"
    console.print(f"Schema {current or '(empty)'}; this canasta needs {head}: {state}.")


# ---------------------------------------------------------------------- registry


def _report_rejects(error: ImportRejected, rejects: Path, *, partial: bool = False) -> None:
    if partial:
        err.print(f"[yellow]Some rows were refused[/yellow]: {error.message}.")
    else:
        err.print(f"[red]Nothing was imported[/red]: {error.message}.")
    for p in error.problems[:20]:
        err.print(f"  {p}")
    if len(error.problems) > 20:
        err.print(f"  … and {len(error.problems) - 20} more")
    try:
        with rejects.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["file", "row", "line", "field", "reason"])
            for p in error.problems:
                writer.writerow([p.file, p.row, p.line, p.field, p.reason])
    except OSError as cannot:
        err.print(f"The problems could not be written to {rejects}: {cannot.strerror or cannot}.")
        return
    err.print(f"Every problem is listed in {rejects}.")


@registry_app.command("import")
def registry_import(
    file: Annotated[
        Path | None, typer.Argument(help="Registrations, CSV or Parquet (.parquet), one person a row.")
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Where to write the refused rows (default: FILE.rejects.csv).")
    ] = None,
    all_or_nothing: Annotated[
        bool, typer.Option("--all-or-nothing", help="Import nothing if any row is bad.")
    ] = False,
    from_dci: Annotated[
        str | None,
        typer.Option(
            "--from-dci",
            help="Pull the registrations from another SPDCI registry at this address instead of a file.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CANASTA_DCI_TOKEN", help="The bearer token that registry gave canasta (--from-dci)."
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="The search criteria to send, as JSON (--from-dci; default: every person)."),
    ] = None,
    db: Db = None,
) -> None:
    """Import registrations (people grouped into households by household_ref) in one
    transaction: the valid households, with every refused row and why in the rejects file,
    or with --all-or-nothing nothing at all if any row is bad.

    Columns: registration_id, given_names, family_name, second_family_name, sex,
    date_of_birth (YYYY-MM-DD), region, municipality, address, phone, household_ref, and the
    declared attributes' columns."""
    engine = _engine(db)
    if from_dci is not None:
        _import_from_dci(engine, from_dci, token, query, rejects, all_or_nothing, file)
        return
    if file is None:
        raise typer.BadParameter("name a FILE, or --from-dci URL", param_hint="FILE")
    target = rejects or file.with_name(file.name + ".rejects.csv")
    try:
        with _bar(f"Importing {file.name}") as advance:
            summary = registry_service.import_registrations_file(
                engine, file, progress=advance, all_or_nothing=all_or_nothing
            )
    except ImportRejected as error:
        _report_rejects(error, target)
        raise typer.Exit(1) from None
    people = f"{summary.people:,} {'person' if summary.people == 1 else 'people'}"
    homes = f"{summary.households:,} household{'' if summary.households == 1 else 's'}"
    console.print(f"Imported {people} in {homes} from {file.name}.")
    if summary.refused:
        _report_rejects(
            ImportRejected(
                f"{summary.refused_rows:,} rows of {file.name} were refused and not imported",
                list(summary.refused),
            ),
            target,
            partial=True,
        )


def _import_from_dci(
    engine: sa.Engine,
    url: str,
    token: str | None,
    query: str | None,
    rejects: Path | None,
    all_or_nothing: bool,
    keep: Path | None,
) -> None:
    import json

    from canasta.service.dci_client import Client, import_from_dci
    from canasta.service.transparency import keyring_of

    if not token:
        raise typer.BadParameter("give the token that registry issued to canasta", param_hint="--token")
    try:
        criteria = json.loads(query) if query else None
    except ValueError:
        raise typer.BadParameter("the query is not JSON", param_hint="--query") from None
    if criteria is not None and not isinstance(criteria, dict):
        raise typer.BadParameter("the query is a JSON object of search criteria", param_hint="--query")
    settings = Settings.load()
    client = Client(url, token, settings.dci_sender_id, keyring_of(engine).dci.private)
    try:
        with console.status(f"Asking {url} …"):
            summary, written = import_from_dci(engine, client, criteria, all_or_nothing, keep)
    except ImportRejected as error:
        _report_rejects(error, rejects or Path(f"{urlsplit(url).netloc or 'registry'}.rejects.csv"))
        raise typer.Exit(1) from None
    kept = f" (the records are in {written})" if keep is not None else ""
    console.print(
        f"Imported {summary.people:,} people in {summary.households:,} households from {url}{kept}. "
        "Run 'canasta registry dedup' to find people registered twice."
    )
    if summary.refused:
        _report_rejects(
            ImportRejected(
                f"{summary.refused_rows:,} records from {url} were refused", list(summary.refused)
            ),
            rejects or written.with_name(written.name + ".rejects.csv"),
            partial=True,
        )


_STAGES = (
    "reading registrations",
    "normalising",
    "estimating the model",
    "scoring candidate pairs",
    "clustering",
    "storing merges and the review queue",
)


@registry_app.command("dedup")
def registry_dedup(
    full: Annotated[
        bool, typer.Option("--full", help="Estimate the model again and score every pair, not only new ones.")
    ] = False,
    upper: Annotated[float, typer.Option(help="Merge pairs at or above this match probability.")] = 0.95,
    lower: Annotated[float, typer.Option(help="Queue pairs from this probability up for review.")] = 0.5,
    db: Db = None,
) -> None:
    """Find people registered more than once. Pairs at or above --upper are merged (each
    merge recorded in the ledger, and undoable); pairs between the thresholds go to the
    review queue (canasta registry review). After the first run only registrations imported
    since are matched, against everyone, with the model that run estimated."""
    try:
        thresholds = Thresholds(upper, lower)
    except ValueError as bad:
        raise CanastaError(f"--upper {upper} --lower {lower}: {bad}") from None
    engine = _engine(db)
    with _progress() as bar:
        task = bar.add_task("Deduplicating", total=len(_STAGES))

        def stage(name: str) -> None:
            done = _STAGES.index(name) if name in _STAGES else 0
            bar.update(task, completed=done, description=f"Deduplicating: {name}")

        summary = dedup_service.run(engine, full=full, thresholds=thresholds, progress=stage)
    if summary.kind == "none":
        console.print(f"Nothing to compare: {summary.registrations} registration(s) stand on their own.")
        return
    if summary.run_id is None:
        console.print(
            f"No registration is new since the last run ({summary.registrations:,} registrations); "
            f"{summary.open_reviews:,} pairs await review. Use --full to match everyone again."
        )
        return
    matched = (
        f"{summary.registrations:,} registrations"
        if summary.kind == "full"
        else f"{summary.new_registrations:,} new registrations against {summary.registrations:,}"
    )
    console.print(f"Run {summary.run_id} ({summary.kind}): matched {matched}.")
    console.print(
        f"  {summary.merged:,} registrations merged into another (probability >= {upper}); "
        f"{summary.queued:,} pairs queued for review; {summary.open_reviews:,} pairs await review."
    )
    if summary.open_reviews:
        console.print("  Work through them with: canasta registry review")


def _registration_table(item: dedup_service.ReviewItem) -> Table:
    weights = {str(e["field"]): e for e in item.evidence}
    table = Table(title=f"Review item {item.id}: match probability {item.match_probability} ({item.reason})")
    table.add_column("field")
    table.add_column(item.left.registration_id)
    table.add_column(item.right.registration_id)
    table.add_column("comparison")
    table.add_column("weight", justify="right")
    a, b = item.left, item.right

    def row(label: str, left: str, right: str, compared: str | None = None) -> None:
        found = weights.get(compared or "")
        level = str(found["level"]) if found else ("same" if left == right else "(not compared)")
        weight = f"{float(found['weight']):+.1f}" if found else ""
        table.add_row(label, left, right, level, weight)

    row("given names", a.given_names, b.given_names, "given_names")
    row(
        "family names",
        f"{a.family_name} {a.second_family_name}".strip(),
        f"{b.family_name} {b.second_family_name}".strip(),
        "family_names",
    )
    row("date of birth", a.date_of_birth, b.date_of_birth, "date_of_birth")
    row("sex", a.sex, b.sex, "sex")
    row("household", a.household_ref, b.household_ref)
    row("address", a.address, b.address, "address")
    row("municipality", f"{a.municipality}, {a.region}", f"{b.municipality}, {b.region}")
    row("phone", a.phone, b.phone, "phone")
    return table


@registry_app.command("review")
def registry_review(
    reviewer: Annotated[
        str | None, typer.Option("--reviewer", help="Your name, recorded with each decision.")
    ] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the open items and stop.")] = False,
    item: Annotated[int | None, typer.Option("--item", help="Decide this item only.")] = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="With --item: merge or distinct, without asking.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="With --decision: a note kept with it.")] = None,
    limit: Annotated[int, typer.Option(help="With --list: at most this many.")] = 50,
    db: Db = None,
) -> None:
    """Work through the review queue: for each pair, the two registrations side by side with
    how each field compared and its match weight, then merge (m), distinct (d), skip (s) or
    quit (q)."""
    engine = _engine(db)
    if list_only:
        items = dedup_service.open_items(engine, limit)
        table = Table(title=f"{dedup_service.count_open(engine):,} pairs await review")
        for column in ("item", "probability", "why", "registration", "", "registration", ""):
            table.add_column(column)
        for i in items:
            table.add_row(
                str(i.id),
                i.match_probability,
                i.reason,
                i.left.registration_id,
                f"{i.left.given_names} {i.left.family_name}",
                i.right.registration_id,
                f"{i.right.given_names} {i.right.family_name}",
            )
        console.print(table)
        return
    if reviewer is None or not reviewer.strip():
        raise CanastaError("--reviewer NAME is needed: every decision records who made it")
    if decision is not None:
        if item is None:
            raise CanastaError("--decision needs --item ID")
        made = dedup_service.decide(engine, item, decision, reviewer, note)
        console.print(_decided(made))
        return
    queue = [dedup_service.get_item(engine, item)] if item is not None else None
    after, decided = 0, 0
    while True:
        if queue is None:
            batch = dedup_service.open_items(engine, 1, after)
            if not batch:
                break
            current = batch[0]
        elif queue:
            current = queue.pop()
        else:
            break
        after = current.id
        console.print(_registration_table(current))
        answer = typer.prompt("merge (m), distinct (d), skip (s), quit (q)", default="s").strip().lower()
        if answer in ("q", "quit"):
            break
        if answer in ("s", "skip", ""):
            continue
        if answer not in ("m", "merge", "d", "distinct"):
            err.print(f"{answer!r} is not one of m, d, s, q; skipped.")
            continue
        text = typer.prompt("note (optional)", default="", show_default=False)
        made = dedup_service.decide(
            engine, current.id, "merge" if answer.startswith("m") else "distinct", reviewer, text or None
        )
        decided += 1
        console.print(_decided(made))
    console.print(f"{decided} decided; {dedup_service.count_open(engine):,} pairs await review.")


def _decided(made: dedup_service.Decision) -> str:
    if made.status == "distinct":
        return f"Item {made.item_id}: distinct people; no run will merge them."
    if made.merge_id is None:
        return f"Item {made.item_id}: already one person; nothing to merge."
    return f"Item {made.item_id}: merged (merge {made.merge_id}, ledger entry {made.ledger_seq})."


@registry_app.command("merges")
def registry_merges(
    registration: Annotated[
        str | None, typer.Option("--registration", help="Only merges of this registration id.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, latest first.")] = 50,
    db: Db = None,
) -> None:
    """List merges, latest first, with who decided them and whether they were undone."""
    engine = _engine(db)
    table = Table()
    for column in ("merge", "kept", "merged", "probability", "by", "at", "ledger", "undone"):
        table.add_column(column)
    for m in dedup_service.list_merges(engine, registration, limit):
        undone = f"{m.undone_at} by {m.undone_by}: {m.undo_reason}" if m.undone_at else ""
        table.add_row(
            str(m.id),
            m.kept,
            m.merged,
            m.match_probability,
            m.decided_by,
            m.decided_at,
            str(m.ledger_seq),
            undone,
        )
    console.print(table)


@registry_app.command("undo-merge")
def registry_undo_merge(
    merge: Annotated[int, typer.Argument(help="The merge's number (canasta registry merges).")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name, recorded with the undo.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the merge was wrong.")],
    db: Db = None,
) -> None:
    """Undo a merge: the registration counts on its own again, the undo is a ledger entry,
    and the pair is recorded as two people so no run merges it again."""
    seq = dedup_service.undo_merge(_engine(db), merge, reviewer, reason)
    console.print(f"Merge {merge} undone (ledger entry {seq}); the pair is recorded as distinct people.")


@registry_app.command("export-clusters")
def registry_export_clusters(
    file: Annotated[Path, typer.Argument(help="Where to write it: CSV, or Parquet by a .parquet suffix.")],
    db: Db = None,
) -> None:
    """Write registration_id,person_id for every registration; person_id is the
    registration id of the person's first registration, the one duplicates were merged into."""
    with console.status(f"Writing {file.name}…"):
        count = dedup_service.export_clusters(_engine(db), file)
    console.print(f"Wrote {count:,} registrations to {file}.")


@registry_app.command("import-vehicles")
def registry_import_vehicles(
    file: Annotated[Path, typer.Argument(help="Vehicles CSV: plate, kind, household_ref.")],
    rejects: Annotated[Path | None, typer.Option(help="Where to write the problems.")] = None,
    db: Db = None,
) -> None:
    """Import vehicles owned by registered households, all or nothing."""
    engine = _engine(db)
    try:
        with console.status(f"Importing {file.name}…"):
            summary = registry_service.import_vehicles_file(engine, file)
    except ImportRejected as error:
        _report_rejects(error, rejects or file.with_name(file.name + ".rejects.csv"))
        raise typer.Exit(1) from None
    console.print(f"Imported {summary.vehicles:,} vehicles from {file.name}.")


@registry_app.command("check-schema")
def registry_check_schema(
    file: Annotated[Path, typer.Argument(help="Registry schema file (TOML) declaring attributes.")],
) -> None:
    """Check a registry schema file: every attribute's type, owner, need category and
    purpose, and the protected-attribute firewall on every name and purpose."""
    from canasta.registry.csvfile import decode
    from canasta.registry.schema import parse_schema

    try:
        data = file.read_bytes()
    except OSError as cannot:
        raise CanastaError(f"cannot read {file}: {cannot.strerror or cannot}") from None
    schema = parse_schema(decode(data, file.name), file.name)
    table = Table("attribute", "type", "unit", "belongs to", "need category", "purpose")
    for a in schema.attributes.values():
        table.add_row(a.name, a.type.value, a.unit, a.belongs_to.value, a.category.value, a.purpose)
    console.print(table)
    console.print(f"{file.name} declares {len(schema.attributes)} attribute(s); no problems found.")


@registry_app.command("declare")
def registry_declare(
    file: Annotated[Path, typer.Argument(help="Registry schema file (TOML) declaring attributes.")],
    db: Db = None,
) -> None:
    """Make a schema file the declared attributes: new ones get a place for their values,
    removed ones lose theirs. Refused if a published policy reads a removed attribute."""
    from canasta.service import rules

    change = rules.declare_schema(_engine(db), rules.read_text(file), file.name)
    console.print(
        f"Declared {file.name} ({change.sha256[:12]}): {len(change.added)} added, "
        f"{len(change.removed)} removed, {len(change.updated)} updated, {len(change.unchanged)} unchanged."
    )
    for label, names in (("added", change.added), ("removed", change.removed), ("updated", change.updated)):
        if names:
            console.print(f"  {label}: {', '.join(names)}")


@registry_app.command("schema")
def registry_schema(db: Db = None) -> None:
    """Show every attribute rules may use: built in and declared, with its purpose."""
    from canasta.service import rules

    table = Table("attribute", "type", "unit", "belongs to", "need category", "purpose")
    for a in rules.schema_attributes(_engine(db)):
        table.add_row(a.name, a.type.value, a.unit, a.belongs_to.value, a.category.value, a.purpose)
    console.print(table)


# -------------------------------------------------------------------- programmes


@programmes_app.command("create")
def programmes_create(
    name: Annotated[str, typer.Argument(help="Short name used by outlets, e.g. 'fuel'.")],
    unit: Annotated[str, typer.Option(help="Unit handed out: litre, kg, basket…")],
    per: Annotated[BeneficiaryKind, typer.Option(help="Who is entitled.")],
    quota: Annotated[str, typer.Option(help="Fixed quantity per beneficiary and cycle.")] = "0",
    per_member: Annotated[str, typer.Option(help="Extra quantity per household member.")] = "0",
    cycle_days: Annotated[int, typer.Option(help="Length of a cycle in days.")] = 30,
    db: Db = None,
) -> None:
    """Define a programme. Its quota is fixed, or per household member, or both."""
    programme = Programme(
        name=name,
        unit=unit,
        per=per,
        cycle_days=cycle_days,
        quota_fixed=to_milli(quota, allow_zero=True),
        quota_per_member=to_milli(per_member, allow_zero=True),
    )
    programme_service.create_programme(_engine(db), programme)
    console.print(f"Programme {name}: {programme.describe_quota()}.")


@programmes_app.command("list")
def programmes_list(db: Db = None) -> None:
    """List programmes."""
    table = Table("name", "unit", "per", "quota")
    for p in programme_service.list_programmes(_engine(db)):
        table.add_row(p.name, p.unit, p.per.value, p.describe_quota())
    console.print(table)


# ------------------------------------------------------------------------ cycles


@cycles_app.command("open")
def cycles_open(
    programme: str,
    starts: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: today).")] = None,
    db: Db = None,
) -> None:
    """Open the programme's next cycle and grant every entitlement (all or nothing)."""
    starts_on = _date(starts, "--starts") if starts else None
    with console.status(f"Granting {programme} entitlements…"):
        s = programme_service.open_cycle(_engine(db), programme, starts_on)
    console.print(
        f"Opened {programme} cycle {s.cycle_id} ({s.starts_on} to {s.ends_on}): "
        f"{s.entitlements:,} entitlements, {format_milli(s.total)} in all."
    )


@cycles_app.command("run")
def cycles_run(
    programme: str,
    period: Annotated[str, typer.Argument(help="YYYY-MM (from the 1st) or the first day, YYYY-MM-DD.")],
    db: Db = None,
) -> None:
    """Compute every entitlement of the cycle from the programme's published policy, in one
    set-based statement and one transaction. A cycle with no redemptions yet is run again
    (after a new policy is published); one with redemptions, or closed, is refused."""
    starts_on = programme_service.parse_period(period)
    with console.status(f"Running the {programme} cycle from {starts_on}…"):
        s = programme_service.run_cycle(_engine(db), programme, starts_on)
    console.print(
        f"Ran {programme} cycle {s.cycle_id} ({s.starts_on} to {s.ends_on}): "
        f"{s.entitlements:,} entitlements, {format_milli(s.total)} in all."
    )


@cycles_app.command("close")
def cycles_close(programme: str, db: Db = None) -> None:
    """Close the programme's open cycle; its cards are refused until the next opens."""
    s = programme_service.close_cycle(_engine(db), programme)
    console.print(
        f"Closed {programme} cycle {s.cycle_id}: {format_milli(s.redeemed)} of "
        f"{format_milli(s.total)} redeemed."
    )


@cycles_app.command("list")
def cycles_list(db: Db = None) -> None:
    """List cycles with what was granted and redeemed."""
    table = Table("programme", "cycle", "from", "to", "status", "entitlements", "granted", "redeemed")
    for s in programme_service.list_cycles(_engine(db)):
        table.add_row(
            s.programme,
            str(s.cycle_id),
            str(s.starts_on),
            str(s.ends_on),
            s.status,
            f"{s.entitlements:,}",
            format_milli(s.total),
            format_milli(s.redeemed),
        )
    console.print(table)


# ------------------------------------------------------------------------ policy


def _show_problems(error: PolicyRejected) -> None:
    err.print(f"[red]Error[/red]: {error.summary}; nothing was changed.")
    for p in error.problems[:50]:
        err.print(f"  {p}")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy file (TOML).")],
    db: Db = None,
) -> None:
    """Check a policy: its expressions, the attributes they use (declared, never
    protected) and its programme. Every problem is named with line, column and token."""
    from canasta.service import rules

    policy = rules.check_policy(_engine(db), rules.read_text(file), file.name)
    console.print(
        f"{file.name}: {policy.programme} version {policy.version} checks "
        f"(sha256 {policy.sha256}); it reads {len(policy.facts)} fact(s): "
        + ", ".join(f.key for f in policy.facts)
        + "."
    )


@policy_app.command("publish")
def policy_publish(
    file: Annotated[Path, typer.Argument(help="Policy file (TOML).")],
    db: Db = None,
) -> None:
    """Publish a checked policy as its programme's next version, stored under its SHA-256
    and never edited; the next cycle run uses it."""
    from canasta.service import rules

    published = rules.publish_policy(_engine(db), rules.read_text(file), file.name)
    console.print(
        f"Published {published.programme} version {published.version} (sha256 {published.sha256})"
        + (f", superseding version {published.supersedes}." if published.supersedes else ".")
    )


@policy_app.command("show")
def policy_show(
    programme: str,
    version: Annotated[int | None, typer.Option(help="A version (default: the current one).")] = None,
    db: Db = None,
) -> None:
    """Print a published policy exactly as it was published."""
    from canasta.service import rules

    number, sha, text = rules.published_text(_engine(db), programme, version)
    console.print(f"# {programme} version {number}, sha256 {sha}", markup=False)
    console.print(text, markup=False, end="")


@policy_app.command("diff")
def policy_diff(
    old: Annotated[str, typer.Argument(help="The policy in force: a file, or 'published'.")],
    new: Annotated[Path, typer.Argument(help="The proposed policy file.")],
    period: Annotated[str | None, typer.Option(help="Cycle to preview, YYYY-MM (default: today).")] = None,
    examples: Annotated[int, typer.Option(help="Example households of each kind.", min=0, max=50)] = 10,
    lang: Annotated[str, typer.Option(help="Language of the explanations: en or es.")] = "en",
    db: Db = None,
) -> None:
    """Preview a policy's impact before publishing: how many gain, lose or change quota,
    by region, with example households of each kind and their explanations."""
    from canasta.service import rules

    engine = _engine(db)
    new_text = rules.read_text(new)
    if old == "published":
        proposed = rules.check_policy(engine, new_text, new.name)
        version, _, old_text = rules.published_text(engine, proposed.programme)
        old_name = f"{proposed.programme} v{version} (published)"
    else:
        old_text, old_name = rules.read_text(Path(old)), Path(old).name
    starts_on = programme_service.parse_period(period) if period else None
    with console.status("Computing both policies over the registry…"):
        impact = rules.diff_policies(
            engine, old_text, old_name, new_text, new.name, starts_on, examples, _language(lang)
        )
    unit = impact.unit
    table = Table(
        "region",
        f"{impact.per}s",
        "gain",
        "lose",
        "more",
        "less",
        "same",
        f"before ({unit})",
        f"after ({unit})",
        title=f"{impact.programme}: {impact.old} → {impact.new}, cycle from {impact.starts_on}",
    )
    for r in [*impact.regions, impact.totals]:
        table.add_row(
            r.region,
            f"{r.total:,}",
            f"{r.gain:,}",
            f"{r.lose:,}",
            f"{r.more:,}",
            f"{r.less:,}",
            f"{r.same:,}",
            format_milli(r.before),
            format_milli(r.after),
            end_section=r is impact.regions[-1] if impact.regions else False,
        )
    console.print(table)
    for kind, found in impact.examples.items():
        if not found:
            continue
        console.print(f"\n[bold]{kind}[/bold] ({len(found)} example(s))")
        for ex in found:
            console.print(
                f"  {ex.ref} ({ex.region}): {format_milli(ex.before.quantity)} → "
                f"{format_milli(ex.after.quantity)} {unit}. Now: {ex.before.summary} "
                f"Proposed: {ex.after.summary}"
            )
            for clause in ex.after.clauses:
                used = "; ".join(f"{what}: {value}" for what, value in clause.used)
                console.print(f"      {clause.result:>4} · {clause.text}" + (f" ({used})" if used else ""))


def _language(lang: str) -> str:
    folded = lang.strip().lower()
    if folded not in ("en", "es"):
        raise CanastaError(f"--lang {lang!r}: explanations are in en (English) or es (Spanish)")
    return folded


@app.command("explain")
def explain_command(
    programme: Annotated[str | None, typer.Argument(help="The programme.")] = None,
    ref: Annotated[str | None, typer.Argument(help="Household ref, or vehicle plate.")] = None,
    period: Annotated[
        str | None, typer.Option(help="Cycle, YYYY-MM or YYYY-MM-DD (default: latest).")
    ] = None,
    entitlement: Annotated[int | None, typer.Option(help="Explain this entitlement id instead.")] = None,
    lang: Annotated[str, typer.Option(help="en (English) or es (Spanish).")] = "en",
    db: Db = None,
) -> None:
    """Why a household or vehicle gets what it gets in a cycle: each clause of the rule,
    the values it used and its result, in plain language."""
    from canasta.service import rules

    language = _language(lang)
    engine = _engine(db)
    if entitlement is not None:
        explained = rules.explain_entitlement(engine, entitlement, language)
    elif programme and ref:
        starts_on = programme_service.parse_period(period) if period else None
        explained = rules.explain_beneficiary(engine, programme, ref, starts_on, language)
    else:
        raise CanastaError("name a programme and a household ref (or plate), or give --entitlement ID")
    print_explanation(console, explained)


# ------------------------------------------------------------------------ report


@report_app.command("run")
def report_run(
    file: Annotated[Path, typer.Argument(help="Report definition (TOML).")],
    period: Annotated[
        str | None, typer.Option(help="Cycle, YYYY-MM or YYYY-MM-DD (default: latest).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the rows to this CSV file.")] = None,
    db: Db = None,
) -> None:
    """Coverage and uptake of a programme's cycle, grouped by declared attributes."""
    from canasta.service import rules

    starts_on = programme_service.parse_period(period) if period else None
    result = rules.run_report(_engine(db), rules.read_text(file), file.name, starts_on)
    cycle = f"cycle {result.cycle_id} from {result.starts_on}" if result.cycle_id else "no cycle yet"
    table = Table(
        *(result.columns or ["(all)"]),
        f"{result.per}s",
        "entitled",
        "coverage",
        f"granted ({result.unit})",
        f"redeemed ({result.unit})",
        "uptake",
        title=f"{result.title} · {result.programme}, {cycle}",
    )
    rows = []
    for row in result.rows:
        coverage = f"{row.entitled / row.beneficiaries:.1%}" if row.beneficiaries else "–"
        uptake = f"{row.uptake:.1%}" if row.uptake is not None else "–"
        cells = [
            *(row.group or ["(all)"]),
            f"{row.beneficiaries:,}",
            f"{row.entitled:,}",
            coverage,
            format_milli(row.granted),
            format_milli(row.redeemed),
            uptake,
        ]
        table.add_row(*cells)
        rows.append(cells)
    console.print(table)
    if result.merged:
        console.print(f"{result.merged} group(s) smaller than {result.min_group} were merged into one row.")
    if out is not None:
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                [
                    *(result.columns or ["all"]),
                    f"{result.per}s",
                    "entitled",
                    "coverage",
                    "granted",
                    "redeemed",
                    "uptake",
                ]
            )
            writer.writerows(rows)
        console.print(f"Rows written to {out}.")


# ----------------------------------------------------------------------- outlets


@outlets_app.command("create")
def outlets_create(
    code: Annotated[str, typer.Argument(help="The outlet's code, e.g. 'fs-0042'.")],
    name: Annotated[str, typer.Option(help="Name shown to people.")],
    kind: Annotated[OutletKind, typer.Option(help="What kind of outlet.")],
    region: Annotated[str, typer.Option(help="Region it serves.")],
    db: Db = None,
) -> None:
    """Register an outlet and print its API token (shown this once only)."""
    token = outlet_service.create_outlet(_engine(db), Outlet(code, name, kind, region))
    console.print(f"Outlet {code} registered. Its API token (shown once, keep it safe):")
    console.print(token, soft_wrap=True)


@outlets_app.command("rotate-token")
def outlets_rotate(code: str, db: Db = None) -> None:
    """Give an outlet a new API token; the old one stops working."""
    token = outlet_service.rotate_token(_engine(db), code)
    console.print(f"New API token for {code} (the old one no longer works):")
    console.print(token, soft_wrap=True)


@outlets_app.command("list")
def outlets_list(db: Db = None) -> None:
    """List outlets."""
    table = Table("code", "name", "kind", "region", "active")
    for o in outlet_service.list_outlets(_engine(db)):
        table.add_row(o.code, o.name, o.kind.value, o.region, "yes" if o.active else "no")
    console.print(table)


@outlets_app.command("offline-cap")
def outlets_offline_cap(
    code: Annotated[str, typer.Argument(help="The outlet.")],
    programme: Annotated[str, typer.Argument(help="The programme.")],
    quantity: Annotated[str, typer.Argument(help="Most it may hand out offline in one UTC day, e.g. 500.")],
    db: Db = None,
) -> None:
    """Set what an outlet may hand out of a programme offline in one day (docs/offline.md)."""
    milli = offline_service.set_daily_cap(_engine(db), code, programme, quantity)
    console.print(f"Outlet {code} may hand out {format_milli(milli)} of {programme} offline a day.")


@outlets_app.command("conflicts")
def outlets_conflicts(
    outlet: Annotated[str | None, typer.Option(help="Only this outlet's.")] = None, db: Db = None
) -> None:
    """Offline redemptions the balance did not cover at sync, waiting for a person."""
    table = Table(
        "conflict", "outlet", "counter", "card", "programme", "handed out", "recorded", "short", "why"
    )
    rows = offline_service.open_conflicts(_engine(db), outlet)
    for c in rows:
        table.add_row(
            str(c.id),
            c.outlet_code,
            str(c.counter),
            c.card_id,
            c.programme,
            format_milli(c.quantity),
            format_milli(c.applied),
            format_milli(c.shortfall),
            c.reason,
        )
    console.print(table if rows else "No offline conflicts are open.")


@outlets_app.command("settle-conflict")
def outlets_settle_conflict(
    conflict: Annotated[int, typer.Argument(help="The conflict's number (canasta outlets conflicts).")],
    by: Annotated[str, typer.Option("--by", help="Who settles it.")],
    note: Annotated[str, typer.Option("--note", help="How: recovered, written off, …")],
    db: Db = None,
) -> None:
    """Record how an offline conflict was settled; the redemption records do not change."""
    offline_service.settle_conflict(_engine(db), conflict, by, note)
    console.print(f"Offline conflict {conflict} settled by {by}.")


@programmes_app.command("offline-share")
def programmes_offline_share(
    programme: Annotated[str, typer.Argument(help="The programme.")],
    share: Annotated[str, typer.Argument(help="0 to 1: the share of an entitlement redeemable offline.")],
    db: Db = None,
) -> None:
    """Set the share of each card's entitlement that may be redeemed offline (0: none)."""
    permille = offline_service.set_offline_share(_engine(db), programme, share)
    console.print(f"Offline, a card may take {permille / 10:g}% of its {programme} entitlement per outlet.")


# ------------------------------------------------------------------------ outlet

OutletDir = Annotated[
    Path, typer.Option("--dir", help="The outlet's directory: its key, journal and downloads.")
]


@outlet_app.command("enrol")
def outlet_enrol(
    server: Annotated[str, typer.Argument(help="The canasta server, e.g. https://canasta.example")],
    code: Annotated[str, typer.Argument(help="This outlet's code.")],
    token: Annotated[
        str, typer.Option("--token", envvar="CANASTA_OUTLET_TOKEN", help="The outlet's API token.")
    ],
    directory: OutletDir = Path("canasta-outlet"),
) -> None:
    """Make this outlet's journal key, record it with the server, and download the offline
    allowance, the issuer's key and the revocation list."""
    client = OutletClient.enrol(directory, server, code, token)
    status = client.status()
    client.close()
    console.print(f"Outlet {code} enrolled with {server}; its journal is in {directory}/.")
    for a in status["allowances"]:
        console.print(
            f"  offline {a['programme']}: {a['share_permille'] / 10:g}% of an entitlement per card, "
            f"{format_milli(int(a['daily_cap']))} {a['unit']} a day"
        )


@outlet_app.command("redeem")
def outlet_redeem(
    card: Annotated[str, typer.Argument(help="The scanned card code, or the card id typed.")],
    programme: Annotated[str, typer.Argument(help="The programme.")],
    quantity: Annotated[str, typer.Argument(help="How much, e.g. 12.5")],
    directory: OutletDir = Path("canasta-outlet"),
) -> None:
    """Record a redemption in the journal, then send it; offline if the server cannot be
    reached, within the allowance. Exit status 1 when nothing may be handed out."""
    client = OutletClient(directory)
    try:
        result = client.redeem(card, programme, quantity)
    finally:
        client.close()
    shown = f"{format_milli(result.quantity)} {programme} for card {format_card_id(result.card)}"
    if result.mode == "refused":
        err.print(f"[red]Do not hand out[/red] {shown}: {result.message}.")
        raise typer.Exit(1)
    if result.remaining is None:
        left = ""
    elif result.mode == "offline":
        left = f"; {result.remaining} more may be taken offline here this cycle"
    else:
        left = f"; {result.remaining} left"
    colour = "green" if result.mode == "online" else "yellow"
    console.print(f"[{colour}]Hand out[/{colour}] {shown} (journal {result.counter}, {result.mode}{left}).")
    if result.mode == "offline":
        console.print("OFFLINE: the server cannot be reached; this is recorded here and synced later.")


@outlet_app.command("sync")
def outlet_sync(directory: OutletDir = Path("canasta-outlet")) -> None:
    """Send the journal entries the server has not yet taken; refresh the allowance."""
    client = OutletClient(directory)
    try:
        summary = client.sync()
        client.refresh()
    finally:
        client.close()
    parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(summary.outcomes.items())) or "nothing new"
    console.print(f"Synced {summary.sent} journal entries: {parts}; {summary.waiting} waiting.")
    for first, last in summary.gaps:
        err.print(f"[yellow]The server has no journal entries {first} to {last}[/yellow].")


@outlet_app.command("serve")
def outlet_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    directory: OutletDir = Path("canasta-outlet"),
) -> None:
    """The cashier's page on http://127.0.0.1:PORT: redeem (online, or offline within the
    allowance), see what waits to sync, sync now. It listens on this machine only."""
    import uvicorn

    from canasta.outlet.page import create_page

    console.print(f"The cashier's page is on http://127.0.0.1:{port}/ (Ctrl-C stops it).")
    uvicorn.run(create_page(directory), host="127.0.0.1", port=port, log_level="warning")


@outlet_app.command("status")
def outlet_status(directory: OutletDir = Path("canasta-outlet")) -> None:
    """What the journal holds and what waits to be synced."""
    client = OutletClient(directory)
    try:
        status = client.status()
    finally:
        client.close()
    journal = status["journal"]
    console.print(
        f"Outlet {status['outlet']} ({status['server']}): {journal.get('online', 0)} online, "
        f"{journal.get('offline', 0)} offline, {journal.get('void', 0)} not handed out; "
        f"{journal.get('waiting', 0)} waiting to sync."
    )


# ------------------------------------------------------------------------- cards


@cards_app.command("issue")
def cards_issue(
    out: Annotated[Path, typer.Option(help="CSV of the new cards: card_id, kind, holder.")] = Path(
        "cards.csv"
    ),
    db: Db = None,
) -> None:
    """Issue a card to every household and vehicle that has no active card (a holder whose
    card was revoked gets none)."""
    # Open the list first: cards issued but never listed could not be handed out.
    with out.open("w", newline="", encoding="utf-8") as f:
        with console.status("Issuing cards…"):
            issued = card_service.issue_missing_cards(_engine(db))
        writer = csv.writer(f)
        writer.writerow(["card_id", "kind", "holder"])
        for c in issued:
            writer.writerow([format_card_id(c.card_id), c.kind.value, c.holder])
    console.print(f"Issued {len(issued):,} cards; listed in {out}.")


@cards_app.command("print")
def cards_print(
    cards: Annotated[
        list[str] | None,
        typer.Argument(help="Cards to print, as printed or typed.", metavar="CARD", show_default=False),
    ] = None,
    all_cards: Annotated[bool, typer.Option("--all", help="Print every active card.")] = False,
    fmt: Annotated[
        CardFormat, typer.Option("--format", help="svg (vector) or png (300 dpi).")
    ] = CardFormat.SVG,
    out: Annotated[Path, typer.Option("--out", help="Folder to write one file per card into.")] = Path(
        "cards"
    ),
    note: Annotated[
        str | None,
        typer.Option(
            "--note", help="A line printed on every card, such as the programme (60 characters at most)."
        ),
    ] = None,
    db: Db = None,
) -> None:
    """Draw printable cards (85.6 × 54 mm) with their signed QR code, one file per card named
    by its id. Withdrawn cards are refused; nothing is written unless every card is."""
    if bool(cards) == all_cards:
        raise typer.BadParameter("name the cards to print, or give --all (not both)")
    engine = _engine(db)
    with _bar("Drawing cards") as advance:
        written = print_cards(
            engine,
            keyring_of(engine),
            None if all_cards else cards,
            out,
            fmt,
            programme_note=note,
            progress=advance,
        )
    console.print(
        f"Wrote {len(written):,} {fmt.value.upper()} card{'s' if len(written) != 1 else ''} to {out}."
    )


@cards_app.command("revocations")
def cards_revocations(
    out: Annotated[Path | None, typer.Option(help="Write the list here instead of printing it.")] = None,
    db: Db = None,
) -> None:
    """The signed revocation list: every lost and revoked card, signed by the issuer key."""
    engine = _engine(db)
    note = revocation_list(engine, keyring_of(engine), datetime.now(UTC))
    if out is None:
        console.print(note, end="", highlight=False, markup=False)
    else:
        out.write_text(note, encoding="utf-8")
        console.print(f"Wrote the revocation list to {out}.")


@cards_app.command("withdraw")
def cards_withdraw(
    card: str,
    status: Annotated[CardStatus, typer.Option(help="lost or revoked")] = CardStatus.LOST,
    db: Db = None,
) -> None:
    """Withdraw a card: from now on it is refused everywhere."""
    c = card_service.withdraw_card(_engine(db), card, status)
    console.print(f"Card {format_card_id(c.id)} is now {c.status.value}.")


@cards_app.command("reissue")
def cards_reissue(card: str, db: Db = None) -> None:
    """Replace a lost card; the holder's balance carries over to the new card."""
    new = card_service.reissue_card(_engine(db), card)
    assert new.replaces is not None
    console.print(f"Card {format_card_id(new.replaces)} replaced by {format_card_id(new.id)}.")


@cards_app.command("balance")
def cards_balance(card: str, db: Db = None) -> None:
    """Show what the card's holder may still take this cycle."""
    c, lines = card_service.card_balance(_engine(db), card)
    table = Table("programme", "cycle", "entitled", "redeemed", "remaining")
    for b in lines:
        table.add_row(
            b.programme,
            f"{b.cycle_id} ({b.starts_on} to {b.ends_on})",
            f"{format_milli(b.entitled)} {b.unit}",
            f"{format_milli(b.redeemed)} {b.unit}",
            f"{format_milli(b.remaining)} {b.unit}",
        )
    console.print(f"Card {format_card_id(c.id)} ({c.status.value})")
    console.print(table)


@cards_app.command("set-pin")
def cards_set_pin(
    card: str,
    pin: Annotated[
        str,
        typer.Option(
            prompt="PIN (4 to 8 digits, typed by the card holder)",
            hide_input=True,
            confirmation_prompt=True,
            envvar="CANASTA_PIN",
            help="The new PIN; asked for (twice, hidden) when not given.",
        ),
    ],
    db: Db = None,
) -> None:
    """Set the PIN the card's holder signs in to the portal with (at issue, or when it is
    forgotten). Ends the card's portal sessions."""
    from canasta.service.portal import set_pin

    card_id = set_pin(_engine(db), card, pin)
    console.print(f"PIN set for card {format_card_id(card_id)}.")


staff_app = typer.Typer(help="Staff accounts for the staff pages (/staff).", no_args_is_help=True)
app.add_typer(staff_app, name="staff")

Password = Annotated[
    str,
    typer.Option(
        prompt="Password (at least 12 characters)",
        hide_input=True,
        confirmation_prompt=True,
        envvar="CANASTA_PASSWORD",
        help="Asked for (twice, hidden) when not given.",
    ),
]


@staff_app.command("add")
def staff_add(
    username: str,
    role: Annotated[
        str,
        typer.Option(help="registrar, reviewer, programme_officer, outlet_manager, auditor or admin"),
    ],
    name: Annotated[str, typer.Option(help="The name people see (in their access log, too).")],
    password: Password,
    db: Db = None,
) -> None:
    """Create a staff account."""
    from canasta.service.staff import create_account

    account = create_account(_engine(db), username, name, role, password)
    console.print(f"Staff account {account.username} ({account.role.value}) created.")


@staff_app.command("list")
def staff_list(db: Db = None) -> None:
    """Show every staff account."""
    from canasta.service.staff import list_accounts

    table = Table("user name", "name", "role", "active", "locked until")
    for a in list_accounts(_engine(db)):
        table.add_row(a.username, a.name, a.role.value, "yes" if a.active else "no", a.locked_until or "")
    console.print(table)


@staff_app.command("disable")
def staff_disable(username: str, db: Db = None) -> None:
    """Disable an account; its sessions end at once."""
    from canasta.service.staff import set_active

    set_active(_engine(db), None, username, False)
    console.print(f"Staff account {username} disabled.")


@staff_app.command("enable")
def staff_enable(username: str, db: Db = None) -> None:
    """Enable an account again (and lift a lock after failed sign-ins)."""
    from canasta.service.staff import set_active

    set_active(_engine(db), None, username, True)
    console.print(f"Staff account {username} enabled.")


@staff_app.command("password")
def staff_password(username: str, password: Password, db: Db = None) -> None:
    """Set a new password for an account (and lift a lock)."""
    from canasta.service.staff import set_password

    set_password(_engine(db), username, password)
    console.print(f"Password of {username} changed.")


partners_app = typer.Typer(
    help="Partner systems of the registry API (DCI): who may ask, with what key, why, and for what.",
    no_args_is_help=True,
)
app.add_typer(partners_app, name="partners")


@partners_app.command("add")
def partners_add(
    name: str,
    sender_id: Annotated[str, typer.Option("--sender-id", help="The sender_id its messages carry.")],
    key: Annotated[
        str, typer.Option(help="Its Ed25519 public key: 32 bytes in base64 or base64url, or a JWK in JSON.")
    ],
    purpose: Annotated[str, typer.Option(help="Why it asks; shown in the access log of everyone it reads.")],
    fields: Annotated[str, typer.Option(help="Comma-separated record fields it may receive.")],
    key_name: Annotated[str, typer.Option("--key-name", help="The key's name in its key id.")] = "k1",
    expires: Annotated[str | None, typer.Option(help="The last day of its access (YYYY-MM-DD).")] = None,
    db: Db = None,
) -> None:
    """Register a partner system and print its bearer token (shown once)."""
    from canasta.service.partners import register

    partner, token = register(
        _engine(db), None, name, sender_id, key, key_name, purpose, fields.split(","), expires
    )
    console.print(
        f"Partner {partner.name} ({partner.kid}) registered; it receives {', '.join(partner.fields)}."
    )
    console.print(f"Its bearer token, shown this once: {token}", soft_wrap=True)


@partners_app.command("list")
def partners_list(db: Db = None) -> None:
    """Every partner with its key id, purpose, fields and expiry."""
    from canasta.service.partners import list_partners

    table = Table("name", "key id", "purpose", "fields", "active", "expires")
    for p in list_partners(_engine(db)):
        table.add_row(
            p.name, p.kid, p.purpose, ", ".join(p.fields), "yes" if p.active else "no", p.expires_at or ""
        )
    console.print(table)


@partners_app.command("disable")
def partners_disable(sender_id: str, db: Db = None) -> None:
    """Refuse a partner's requests from now on."""
    from canasta.service.partners import set_active

    set_active(_engine(db), None, sender_id, False)
    console.print(f"Partner {sender_id} disabled.")


@partners_app.command("enable")
def partners_enable(sender_id: str, db: Db = None) -> None:
    """Accept a disabled partner's requests again."""
    from canasta.service.partners import set_active

    set_active(_engine(db), None, sender_id, True)
    console.print(f"Partner {sender_id} enabled.")


# ------------------------------------------------------------------ serve, audit


@app.command("serve")
def serve(
    db: Db = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_batch: Annotated[
        int, typer.Option(help="Most redemptions per group commit.", min=1, max=10_000)
    ] = 512,
    workers: Annotated[
        int, typer.Option(help="Server processes, each committing its own batches.", min=1, max=64)
    ] = 1,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Where browsers reach the pages through a TLS proxy (https://…): forms must come "
            "from there, and cookies are marked Secure. Also CANASTA_PUBLIC_URL."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json), the portal (/portal) and the staff
    pages (/staff)."""
    import os

    import uvicorn

    from canasta.entrypoints.api.app import create_server
    from canasta.service.bootstrap import bootstrap
    from canasta.service.settings import ENV_MAX_BATCH, ENV_PUBLIC_URL, public_origin

    loaded = Settings.load(db)
    try:
        public = public_origin(public_url) if public_url else loaded.public_url
    except ValueError as bad:
        raise typer.BadParameter(str(bad), param_hint="--public-url") from None
    settings = replace(loaded, max_batch=max_batch, public_url=public)
    if public:
        os.environ[ENV_PUBLIC_URL] = public  # for the worker processes
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "loop": "auto",  # uvloop and httptools where they install, asyncio and h11 elsewhere
        "http": "auto",
        # canasta does not act on client addresses, so X-Forwarded-* is not parsed.
        "proxy_headers": False,
    }
    shown = sa.engine.make_url(settings.database_url).render_as_string()
    if workers > 1:
        open_database(settings).dispose()  # create or check the schema once, up front
        os.environ[ENV_DATABASE_URL] = settings.database_url
        os.environ[ENV_MAX_BATCH] = str(max_batch)
        console.print(f"canasta {__version__} serving {shown} on http://{host}:{port} ({workers} processes)")
        uvicorn.run(
            "canasta.entrypoints.api.app:create_server_from_env", factory=True, workers=workers, **options
        )
        return
    canasta = bootstrap(settings, inline=True)
    console.print(f"canasta {__version__} serving {shown} on http://{host}:{port}")
    try:
        uvicorn.run(create_server(canasta), **options)
    finally:
        canasta.close()


@app.command("audit")
def audit(db: Db = None) -> None:
    """Recompute the ledger chain and reconcile it with redemptions and balances. Exits 1 and
    names every broken or missing entry if anything is wrong."""
    with _bar("Auditing the ledger") as advance:
        report = audit_service.run_audit(_engine(db), advance)
    if report.ok:
        console.print(
            f"[green]Audit passed[/green]: {report.entries:,} ledger entries chain correctly; "
            f"{report.redemptions:,} redemptions and {report.entitlements:,} entitlements reconcile."
        )
        return
    err.print(f"[red]Audit failed[/red]: {len(report.problems)} problem(s); first: {report.first}")
    for problem in report.problems[:50]:
        err.print(f"  {problem}")
    if len(report.problems) > 50:
        err.print(f"  … and {len(report.problems) - 50} more")
    raise typer.Exit(1)


# ------------------------------------------------------------------ verify and log


def _verifier(key: str | None, log: HttpLog | None) -> list[Verifier]:
    """The log's public key from ``--key`` (a verifier line or a file holding one), or
    fetched from the log itself when only ``--log`` is given (and said so)."""
    if key is None:
        if log is None:
            raise InvalidInput("give the log's public key with --key (a name+keyid+key line or a file)")
        text = log.key()
        err.print(
            f"[yellow]Using the key the log itself serves[/yellow] ({text}); check it against the key "
            "the operator publishes, or pass --key."
        )
    else:
        path = Path(key)
        text = path.read_text(encoding="utf-8").strip() if "+" not in key and path.is_file() else key
    try:
        return [Verifier.parse(text)]
    except BadNote as bad:
        raise InvalidInput(f"--key: {bad.message}") from None


def _source(source: str) -> tuple[LogSource, HttpLog | None]:
    if source.startswith(("http://", "https://")):
        http = HttpLog(source)
        return http, http
    return DatabaseLog(make_engine(Settings.load(source).database_url)), None


@verify_app.command("receipt")
def verify_receipt_command(
    file: Annotated[Path, typer.Argument(help="A receipt file (canasta-receipt/1 JSON).", exists=True)],
    key: Annotated[str | None, typer.Option(help="The log's public key, or a file holding it.")] = None,
    log: Annotated[
        str | None, typer.Option(help="The log's URL: also check that today's log still holds the entry.")
    ] = None,
) -> None:
    """Check a receipt: its entry, the salt that opens the log's commitment, the inclusion
    proof and the checkpoint's signature. Needs only the log's public key."""
    http = HttpLog(log) if log else None
    report = verify_receipt_file(file.read_text(encoding="utf-8"), _verifier(key, http), http)
    entry = report.verified.entry
    console.print(
        f"[green]Receipt verified[/green]: entry {entry.seq} ({entry.kind}, {entry.recorded_at}) is leaf "
        f"{report.verified.leaf_index} of {report.verified.checkpoint.origin}, in the tree of "
        f"{report.verified.checkpoint.size:,} entries its checkpoint signs."
    )
    if report.latest_size is not None:
        console.print(
            f"The log's latest tree ({report.latest_size:,} entries) extends that tree "
            "(consistency proof checked)."
        )


@verify_app.command("log")
def verify_log_command(
    source: Annotated[str, typer.Argument(help="The log's URL (http…) or a copy of its database.")],
    key: Annotated[str | None, typer.Option(help="The log's public key, or a file holding it.")] = None,
) -> None:
    """Rebuild the log's Merkle tree from every leaf and check every checkpoint it ever
    signed against it. Exits 1 naming each checkpoint that does not hold."""
    found, http = _source(source)
    verifiers = _verifier(key, http)
    with _bar("Verifying the log") as advance:
        report = verify_log(found, verifiers, advance)
    if report.ok:
        console.print(
            f"[green]Log verified[/green]: {report.origin}, {report.leaves:,} leaves; all "
            f"{report.checkpoints:,} checkpoints match the rebuilt tree ({report.seconds:.1f} s)."
        )
        return
    err.print(f"[red]Log verification failed[/red]: {len(report.problems)} problem(s)")
    for problem in report.problems[:50]:
        err.print(f"  {problem}")
    raise typer.Exit(1)


@log_app.command("checkpoint")
def log_checkpoint(db: Db = None) -> None:
    """Print the log's latest signed checkpoint (signing one if the last writer had no key)."""
    checkpoint = LogView(_engine(db)).checkpoint()
    console.print(checkpoint.note, end="", highlight=False, markup=False)


@log_app.command("key")
def log_key(db: Db = None) -> None:
    """Print the public keys (verifier lines): the log's and the card issuer's."""
    for role, verifier in keyring_of(_engine(db)).verifiers().items():
        console.print(f"{role.value}: {verifier}", highlight=False, markup=False)


@log_app.command("receipt")
def log_receipt(
    position: Annotated[int, typer.Argument(help="The entry's ledger position.")],
    out: Annotated[Path | None, typer.Option(help="Write the receipt here instead of printing it.")] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="json (to verify) or svg (an 80 mm printable slip with its QR code)."),
    ] = "json",
    db: Db = None,
) -> None:
    """The log receipt of a ledger entry, proved against the latest checkpoint."""
    if fmt not in ("json", "svg"):
        raise InvalidInput(f"--format is json or svg, not {fmt!r}")
    engine = _engine(db)
    receipt = LogView(engine).receipt(position)
    if fmt == "svg":
        units = {p.name: p.unit for p in programme_service.list_programmes(engine)}
        text = render_receipt_svg(receipt, units.get(str(receipt.entry.body.get("programme"))))
    else:
        text = receipt.to_json()
    if out is None:
        console.print(text, end="", highlight=False, markup=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"Wrote the receipt of entry {position} to {out}.")


@app.command("demo")
def demo(
    households: Annotated[int, typer.Option(help="Households in the synthetic country.")] = 50_000,
    vehicles: Annotated[int | None, typer.Option(help="Vehicles (default: 2 per 5 households).")] = None,
    outlets: Annotated[
        int | None, typer.Option(help="Outlets, at least 2 (default: 1 per 250 households).", min=2)
    ] = None,
    dir: Annotated[Path, typer.Option("--dir", help="Fresh directory for the demo's files.")] = Path(
        "canasta-demo"
    ),
    seconds: Annotated[float, typer.Option(help="How long outlets redeem (at most 60).")] = 20,
    concurrency: Annotated[int, typer.Option(help="Simultaneous outlet requests.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed for the synthetic country.")] = 7,
) -> None:
    """Build a synthetic country, open a cycle, issue cards, serve the API and drive
    simulated outlets over HTTP, then report and audit."""
    from canasta.entrypoints.demo import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            households=households,
            vehicles=vehicles if vehicles is not None else households * 2 // 5,
            outlets=outlets if outlets is not None else max(2, households // 250),
            directory=dir,
            seconds=min(seconds, 60.0),
            concurrency=concurrency,
            seed=seed,
        ),
        console,
    )


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CanastaError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def run(argv: list[str]) -> int:
    """Run the CLI on ``argv`` and return the exit status; errors become one sentence."""
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, though click wants it before the command
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    try:
        result = app(argv, prog_name="canasta", standalone_mode=False)
        if isinstance(result, int):  # click hands back typer.Exit's code in this mode
            return result
    except typer.Exit as done:
        return int(getattr(done, "exit_code", 0))
    except typer.Abort:
        err.print("Aborted.")
        return 130
    except typer.TyperException as usage:  # typer's own click: usage errors
        show = getattr(usage, "show", None)
        if show is not None:
            show()
        else:
            err.print(str(usage))
        return int(getattr(usage, "exit_code", 2))
    except ImportRejected as error:
        if debug:
            raise
        err.print(f"[red]Error[/red]: {error.message}.")
        for p in error.problems[:20]:
            err.print(f"  {p}")
        return 1
    except PolicyRejected as error:
        if debug:
            raise
        _show_problems(error)
        return 1
    except CanastaError as error:
        if debug:
            raise
        err.print(f"[red]Error[/red]: {error.message}.")
        return 1
    except sa.exc.DBAPIError as error:  # unreachable, not a database, a refused write
        if debug:
            raise
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        err.print(f"[red]Error[/red]: the database could not be used: {reason}.")
        return 1
    except OSError as error:
        if debug:
            raise
        err.print(f"[red]Error[/red]: {error.strerror or error}: {error.filename or ''}".rstrip(": ") + ".")
        return 1
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
