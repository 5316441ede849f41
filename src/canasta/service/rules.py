"""Published rules: the registry schema, policies, their impact, and explanations.

* ``declare_schema`` makes a schema file the declared attributes (adding or dropping the
  columns that hold their values), refusing changes that would strand a published policy.
* ``check_policy`` / ``publish_policy`` / ``diff_policies``: a policy is checked against the
  declared attributes and its programme, previewed against the registry, and published
  under its SHA-256, never edited.
* ``explain_entitlement`` / ``explain_beneficiary``: why a household or vehicle gets what
  it gets in a cycle, from the facts stored with its entitlement (or, when it got nothing,
  from the registry as the cycle's policy reads it).
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from canasta.adapters import attributes_repo, ledger_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import (
    cards,
    cycles,
    entitlements,
    households,
    policies,
    programmes,
    vehicles,
)
from canasta.domain.errors import Conflict, ImportRejected, InvalidInput, NotFound, RowProblem
from canasta.domain.ledger import EntryKind
from canasta.domain.model import BeneficiaryKind, Programme, normalise_card_id
from canasta.domain.quantity import format_milli
from canasta.policy.compile import Dialect, compile_select
from canasta.policy.document import Policy, parse_policy, policy_hash
from canasta.policy.explain import Explanation, explain, load_facts
from canasta.policy.language import BUILT_IN, Catalogue, Fact, PolicyRejected, Problem
from canasta.registry.schema import Attribute, Owner, parse_schema
from canasta.service.authz import Permission, Staff, require
from canasta.service.clock import utc_now_iso


def dialect_of(conn: sa.Connection | sa.Engine) -> Dialect:
    name = conn.dialect.name
    return Dialect.POSTGRESQL if name == "postgresql" else Dialect.SQLITE


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInput(f"{path.name} is not UTF-8 text (line {line})") from None


# -- the registry schema -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaChange:
    sha256: str
    added: list[str]
    removed: list[str]
    updated: list[str]
    unchanged: list[str]


def declare_schema(engine: sa.Engine, text: str, filename: str) -> SchemaChange:
    """Make the schema in ``text`` the declared attributes, all or nothing."""
    wanted = parse_schema(text, filename).attributes
    with transaction(engine) as conn:
        current = attributes_repo.load(conn)
        used = _used_attributes(conn)
        problems: list[RowProblem] = []
        for name, attribute in current.items():
            if name not in wanted and name in used:
                problems.append(
                    RowProblem(
                        filename,
                        0,
                        f"attributes.{name}",
                        f"is used by published policy {used[name]}; it stays declared while a "
                        "published policy reads it (supersede the policy first)",
                    )
                )
            new = wanted.get(name)
            if new is not None and (new.type, new.belongs_to) != (attribute.type, attribute.belongs_to):
                problems.append(
                    RowProblem(
                        filename,
                        0,
                        f"attributes.{name}",
                        f"was declared as {attribute.type.value} of a {attribute.belongs_to.value}; its "
                        "type and owner cannot change (declare a new attribute under a new name)",
                    )
                )
        if problems:
            raise ImportRejected(f"{filename}: the schema cannot replace the declared one", problems)
        sha = policy_hash(text)
        attributes_repo.replace(conn, sha, text, utc_now_iso(), wanted, current)
    return SchemaChange(
        sha,
        sorted(set(wanted) - set(current)),
        sorted(set(current) - set(wanted)),
        sorted(n for n in set(wanted) & set(current) if wanted[n] != current[n]),
        sorted(n for n in set(wanted) & set(current) if wanted[n] == current[n]),
    )


def _used_attributes(conn: sa.Connection) -> dict[str, str]:
    """Declared attribute → the first published policy (programme vN) that reads it."""
    catalogue = Catalogue.of(attributes_repo.load(conn))
    used: dict[str, str] = {}
    for row in conn.execute(
        sa.select(policies.c.text, policies.c.version, programmes.c.name, programmes.c.per)
        .join(programmes, programmes.c.id == policies.c.programme_id)
        .order_by(policies.c.id)
    ):
        policy = parse_policy(row.text, f"{row.name} v{row.version}", catalogue, Owner(row.per))
        for fact in policy.facts:
            names = [fact.attribute.name] if fact.attribute else _names(fact)
            for name in names:
                used.setdefault(name, f"{row.name} v{row.version}")
    return used


def _names(fact: Fact) -> list[str]:
    """The members' attributes an aggregate fact reads."""
    found = []
    for part in (fact.argument, fact.condition):
        if part is not None:
            found += [str(n.meta["attribute"]) for n in part.walk() if n.meta and "attribute" in n.meta]
    return found


def catalogue(conn: sa.Connection) -> Catalogue:
    return Catalogue.of(attributes_repo.load(conn))


# -- policies --------------------------------------------------------------------------------


def _programme(conn: sa.Connection, name: str) -> Programme:
    from canasta.service.programmes import get_programme

    return get_programme(conn, name)


def check_policy(engine: sa.Engine, text: str, filename: str) -> Policy:
    """Parse and check a policy against the declared attributes and its programme."""
    with transaction(engine, write=False) as conn:
        return _check(conn, text, filename)


def _check(conn: sa.Connection, text: str, filename: str) -> Policy:
    """Check ``text`` against its programme (whose kind decides what bare names mean)."""
    known = catalogue(conn)
    named = _named_programme(text)
    if named is None:
        return parse_policy(text, filename, known)  # reports what is wrong with it
    try:
        programme = _programme(conn, named)
    except NotFound:
        line = next((i for i, x in enumerate(text.splitlines(), 1) if x.strip().startswith("programme")), 1)
        raise PolicyRejected(
            f"{filename}: no such programme",
            [Problem(filename, line, 1, named, f"there is no programme called {named!r}")],
        ) from None
    return parse_policy(text, filename, known, owner_of(programme))


def _named_programme(text: str) -> str | None:
    """The programme a policy or report file names, read before checking it (its kind
    decides what bare names mean); None when it names none or is not TOML."""
    try:
        named = tomllib.loads(text).get("programme")
    except tomllib.TOMLDecodeError:
        return None
    return named.strip() if isinstance(named, str) and named.strip() else None


def owner_of(programme: Programme) -> Owner:
    """Who a programme's rules are about: each vehicle, or each household."""
    return Owner.VEHICLE if programme.per is BeneficiaryKind.VEHICLE else Owner.HOUSEHOLD


@dataclass(frozen=True, slots=True)
class Published:
    programme: str
    version: int
    sha256: str
    policy_id: int
    supersedes: int | None


def publish_policy(engine: sa.Engine, text: str, filename: str) -> Published:
    """Store a checked policy under its SHA-256 as its programme's next version."""
    with transaction(engine) as conn:
        ledger_repo.lock_head(conn)
        policy = _check(conn, text, filename)
        return publish_checked(conn, policy)


def publish_for(engine: sa.Engine, actor: Staff, programme: str, text: str) -> Published:
    """A programme officer publishes a policy from the staff pages: it must be for the
    programme whose page it was written on."""
    require(actor, Permission.PUBLISH_POLICIES)
    if _named_programme(text) not in (None, programme):
        raise InvalidInput(f"this policy is not for {programme}")
    return publish_policy(engine, text, f"{programme}.toml")


def impact_for(
    engine: sa.Engine, actor: Staff, programme: str, text: str, language: str = "en"
) -> tuple[Impact, list[GuardedRegion]]:
    """What a proposed text would change against the published policy, as staff may see it:
    no examples, and small cells withheld (``guarded``)."""
    require(actor, Permission.VIEW_POLICIES)
    version, _, current = published_text(engine, programme)
    impact = diff_policies(
        engine, current, f"{programme} v{version}", text, "proposed", examples=0, language=language
    )
    return impact, guarded(impact)


def publish_checked(conn: sa.Connection, policy: Policy) -> Published:
    programme = _programme(conn, policy.programme)
    same = conn.execute(sa.select(policies.c.version).where(policies.c.sha256 == policy.sha256)).one_or_none()
    if same is not None:
        raise Conflict(f"this policy is already published as {policy.programme} version {same.version}")
    latest = conn.scalar(
        sa.select(sa.func.max(policies.c.version)).where(policies.c.programme_id == programme.id)
    )
    if latest is not None and policy.version <= latest:
        raise Conflict(
            f"{policy.programme} version {latest} is already published; a published policy is never "
            f"edited, so publish this as version {latest + 1} or later"
        )
    now = utc_now_iso()
    policy_id = conn.execute(
        policies.insert().returning(policies.c.id),
        {
            "sha256": policy.sha256,
            "programme_id": programme.id,
            "version": policy.version,
            "text": policy.text,
            "published_at": now,
        },
    ).scalar_one()
    ledger_repo.append(
        conn,
        EntryKind.POLICY_PUBLISHED,
        [{"programme": policy.programme, "version": policy.version, "sha256": policy.sha256}],
        now,
    )
    return Published(policy.programme, policy.version, policy.sha256, int(policy_id), latest)


def current_policy(
    conn: sa.Connection, programme: Programme, known: Catalogue | None = None
) -> tuple[int, Policy]:
    row = conn.execute(
        sa.select(policies.c.id, policies.c.text, policies.c.version)
        .where(policies.c.programme_id == programme.id)
        .order_by(policies.c.version.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        raise NotFound(f"{programme.name} has no published policy; publish one with canasta policy publish")
    return int(row.id), _parse_stored(known or catalogue(conn), row.text, programme, row.version)


def policy_by_id(
    conn: sa.Connection, policy_id: int, programme: Programme, known: Catalogue | None = None
) -> Policy:
    row = conn.execute(sa.select(policies.c.text, policies.c.version).where(policies.c.id == policy_id)).one()
    return _parse_stored(known or catalogue(conn), row.text, programme, row.version)


def _parse_stored(known: Catalogue, text: str, programme: Programme, version: int) -> Policy:
    attributes = tuple(sorted(known.attributes.items()))
    return _parsed(text, f"{programme.name} v{version}", attributes, owner_of(programme))


@functools.lru_cache(maxsize=128)
def _parsed(text: str, name: str, attributes: tuple[tuple[str, Attribute], ...], per: Owner) -> Policy:
    """A published policy parsed once: its text never changes, and the key holds the
    declared attributes it was checked against. Explanations are read far more often than
    policies are published, and parsing is most of an explanation's cost."""
    return parse_policy(text, name, Catalogue(dict(attributes)), per)


def published_text(engine: sa.Engine, programme: str, version: int | None = None) -> tuple[int, str, str]:
    """Version, SHA-256 and text of a published policy (the latest when ``version`` is None)."""
    with transaction(engine, write=False) as conn:
        found = _programme(conn, programme)
        query = sa.select(policies.c.version, policies.c.sha256, policies.c.text).where(
            policies.c.programme_id == found.id
        )
        if version is not None:
            query = query.where(policies.c.version == version)
        row = conn.execute(query.order_by(policies.c.version.desc()).limit(1)).one_or_none()
        if row is None:
            raise NotFound(
                f"{programme} has no published policy" + (f" version {version}" if version else "")
            )
        return int(row.version), str(row.sha256), str(row.text)


def fixed_quota_policy(programme: Programme) -> str:
    """The policy a programme starts with: its fixed quota, as given when it was created."""
    if programme.per is BeneficiaryKind.VEHICLE:
        quota = format_milli(programme.quota_fixed)
    else:
        quota = (
            f"{format_milli(programme.quota_fixed)} + {format_milli(programme.quota_per_member)} * members"
        )
    return (
        "# Written by canasta when the programme was created: the quota it was created with.\n"
        f'programme = "{programme.name}"\n'
        "version = 1\n"
        'description = "Everyone registered, with the fixed quota the programme was created with."\n'
        'eligible = "TRUE"\n'
        f'quota = "{quota}"\n'
    )


# -- impact preview --------------------------------------------------------------------------


@dataclass(slots=True)
class RegionImpact:
    region: str
    total: int = 0
    gain: int = 0
    lose: int = 0
    more: int = 0
    less: int = 0
    same: int = 0
    before: int = 0
    after: int = 0
    #: How many were granted anything before and after: a sum over fewer than a handful of
    #: beneficiaries is theirs, not a region's.
    granted_before: int = 0
    granted_after: int = 0


@dataclass(frozen=True, slots=True)
class GuardedRegion:
    """A region's impact as staff pages show it: a count below the threshold, and a sum
    over fewer beneficiaries than that, are None ("fewer than 10"), so that a proposal
    narrowed to one household cannot read that household's facts off the page."""

    region: str
    total: int | None
    gain: int | None
    lose: int | None
    more: int | None
    less: int | None
    same: int | None
    before: int | None
    after: int | None


def guarded(impact: Impact, threshold: int = 10) -> list[GuardedRegion]:
    """The impact's regions, and their totals last, with small cells withheld (see
    ``GuardedRegion``); regions of fewer than ``threshold`` beneficiaries are pooled."""
    small = [r for r in impact.regions if r.total < threshold]
    rows = [r for r in impact.regions if r.total >= threshold]
    if small:
        pooled = RegionImpact(f"({len(small)})")
        for r in small:
            for name in (*_SUMMED,):
                setattr(pooled, name, getattr(pooled, name) + getattr(r, name))
        rows.append(pooled)
    totals = RegionImpact("(all)")
    for r in impact.regions:
        for name in _SUMMED:
            setattr(totals, name, getattr(totals, name) + getattr(r, name))
    rows.append(totals)

    def count(value: int) -> int | None:
        return value if value >= threshold else None

    def total(value: int, over: int) -> int | None:
        return value if over >= threshold or over == 0 else None

    return [
        GuardedRegion(
            r.region,
            count(r.total),
            count(r.gain),
            count(r.lose),
            count(r.more),
            count(r.less),
            count(r.same),
            total(r.before, r.granted_before),
            total(r.after, r.granted_after),
        )
        for r in rows
    ]


@dataclass(slots=True)
class Example:
    kind: str
    ref: str
    region: str
    before: Explanation
    after: Explanation


@dataclass(slots=True)
class Impact:
    programme: str
    unit: str
    old: str
    new: str
    starts_on: date
    regions: list[RegionImpact]
    examples: dict[str, list[Example]] = field(default_factory=dict)
    per: str = "household"

    @property
    def totals(self) -> RegionImpact:
        total = RegionImpact("(all)")
        for r in self.regions:
            for name in _SUMMED:
                setattr(total, name, getattr(total, name) + getattr(r, name))
        return total


_SUMMED = (
    "total",
    "gain",
    "lose",
    "more",
    "less",
    "same",
    "before",
    "after",
    "granted_before",
    "granted_after",
)


KINDS = ("gain", "lose", "more", "less")


def _granted(dialect: Dialect, alias: str) -> str:
    truth = f"{alias}.eligible = 1" if dialect is Dialect.SQLITE else f"{alias}.eligible"
    return f"(CASE WHEN {truth} AND {alias}.quantity > 0 THEN {alias}.quantity ELSE 0 END)"


def diff_policies(
    engine: sa.Engine,
    old_text: str,
    old_name: str,
    new_text: str,
    new_name: str,
    starts_on: date | None = None,
    examples: int = 10,
    language: str = "en",
) -> Impact:
    """What ``new`` would change against ``old`` over today's registry: how many gain,
    lose or change quota, by region, with examples of each and their explanations."""
    starts = starts_on or date.today()
    with transaction(engine, write=False) as conn:
        old = _check(conn, old_text, old_name)
        new = _check(conn, new_text, new_name)
        if old.programme != new.programme:
            raise InvalidInput(f"{old_name} is for {old.programme} and {new_name} for {new.programme}")
        programme = _programme(conn, new.programme)
        dialect = dialect_of(conn)
        before, after = _granted(dialect, "a"), _granted(dialect, "b")
        per_vehicle = new.per is Owner.VEHICLE
        ref = "v.plate" if per_vehicle else "h.ref"
        join = "JOIN vehicles v ON v.id = a.beneficiary_id " if per_vehicle else ""
        joined = (
            f"FROM ({compile_select(old, dialect, starts)}) a "
            f"JOIN ({compile_select(new, dialect, starts)}) b ON b.beneficiary_id = a.beneficiary_id "
            f"{join}JOIN households h ON h.id = a.household_id"
        )
        kind = (
            f"CASE WHEN {before} = 0 AND {after} > 0 THEN 'gain' "
            f"WHEN {before} > 0 AND {after} = 0 THEN 'lose' "
            f"WHEN {after} > {before} THEN 'more' WHEN {after} < {before} THEN 'less' ELSE 'same' END"
        )
        regions: dict[str, RegionImpact] = {}
        for row in conn.exec_driver_sql(
            f"SELECT h.region AS region, {kind} AS kind, COUNT(*) AS n, SUM({before}) AS before, "
            f"SUM({after}) AS after, SUM(CASE WHEN {before} > 0 THEN 1 ELSE 0 END) AS nb, "
            f"SUM(CASE WHEN {after} > 0 THEN 1 ELSE 0 END) AS na "
            f"{joined} GROUP BY h.region, {kind} ORDER BY h.region"
        ):
            impact = regions.setdefault(row.region, RegionImpact(row.region))
            setattr(impact, row.kind, getattr(impact, row.kind) + int(row.n))
            impact.total += int(row.n)
            impact.before += int(row.before or 0)
            impact.after += int(row.after or 0)
            impact.granted_before += int(row.nb or 0)
            impact.granted_after += int(row.na or 0)
        found: dict[str, list[Example]] = {k: [] for k in KINDS}
        known = catalogue(conn)
        for name in KINDS:
            rows = conn.exec_driver_sql(
                f"SELECT {ref} AS ref, h.region AS region, a.facts AS old_facts, "
                f"b.facts AS new_facts {joined} WHERE {kind} = '{name}' "
                f"ORDER BY a.beneficiary_id LIMIT {int(examples)}"
            )
            for row in rows:
                found[name].append(
                    Example(
                        name,
                        str(row.ref),
                        str(row.region),
                        explain(
                            old, known, load_facts(old, json.loads(row.old_facts)), programme.unit, language
                        ),
                        explain(
                            new, known, load_facts(new, json.loads(row.new_facts)), programme.unit, language
                        ),
                    )
                )
        return Impact(
            new.programme,
            programme.unit,
            f"{old_name} ({old.sha256[:12]})",
            f"{new_name} ({new.sha256[:12]})",
            starts,
            list(regions.values()),
            found,
            new.per.value,
        )


# -- explanations ---------------------------------------------------------------------------


@dataclass(slots=True)
class Explained:
    """An explanation with what it is about."""

    programme: str
    beneficiary: str
    cycle_id: int | None
    starts_on: date
    ends_on: date | None
    entitlement_id: int | None
    granted: int
    explanation: Explanation


def explain_entitlement(
    engine: sa.Engine, entitlement_id: int, language: str = "en", card: str | None = None
) -> Explained:
    """The explanation of one entitlement from the facts stored with it. With ``card``, the
    card must belong to the entitlement's household or vehicle (or it is "not found", so
    that ids cannot be probed)."""
    with transaction(engine, write=False) as conn:
        return _explain_stored(conn, entitlement_id, language, card)


def _explain_stored(conn: sa.Connection, entitlement_id: int, language: str, card: str | None) -> Explained:
    row = conn.execute(
        sa.select(
            entitlements,
            programmes.c.name.label("programme"),
            cycles.c.starts_on,
            cycles.c.ends_on,
        )
        .join(programmes, programmes.c.id == entitlements.c.programme_id)
        .join(cycles, cycles.c.id == entitlements.c.cycle_id)
        .where(entitlements.c.id == entitlement_id)
    ).one_or_none()
    if row is not None and card is not None:
        holder = conn.execute(
            sa.select(cards.c.beneficiary_kind, cards.c.beneficiary_id).where(
                cards.c.id == normalise_card_id(card), cards.c.status == "active"
            )
        ).one_or_none()
        if holder is None or (holder.beneficiary_kind, int(holder.beneficiary_id)) != (
            row.beneficiary_kind,
            int(row.beneficiary_id),
        ):
            row = None
    if row is None:
        raise NotFound(f"there is no entitlement {entitlement_id} for this card")
    programme = _programme(conn, row.programme)
    if row.policy_id is None or row.facts is None:
        raise NotFound(f"entitlement {entitlement_id} was granted before policies were published")
    known = catalogue(conn)
    policy = policy_by_id(conn, int(row.policy_id), programme, known)
    explanation = explain(policy, known, load_facts(policy, json.loads(row.facts)), programme.unit, language)
    return Explained(
        programme.name,
        _beneficiary_label(conn, row.beneficiary_kind, int(row.beneficiary_id)),
        int(row.cycle_id),
        row.starts_on,
        row.ends_on,
        int(row.id),
        int(row.quantity),
        explanation,
    )


def _beneficiary_label(conn: sa.Connection, kind: str, beneficiary_id: int) -> str:
    if kind == "vehicle":
        return f"vehicle {conn.scalar(sa.select(vehicles.c.plate).where(vehicles.c.id == beneficiary_id))}"
    return f"household {conn.scalar(sa.select(households.c.ref).where(households.c.id == beneficiary_id))}"


def explain_beneficiary(
    engine: sa.Engine,
    programme_name: str,
    ref: str,
    starts_on: date | None = None,
    language: str = "en",
) -> Explained:
    """Why the household ``ref`` (or the vehicle with plate ``ref``) gets what it gets in the
    cycle of ``programme`` starting on ``starts_on`` (the latest cycle when None). Without
    any cycle yet, a preview under the current policy from today."""
    with transaction(engine, write=False) as conn:
        programme = _programme(conn, programme_name)
        per_vehicle = programme.per is BeneficiaryKind.VEHICLE
        if per_vehicle:
            from canasta.registry.registrations import normalise_plate

            beneficiary = conn.scalar(
                sa.select(vehicles.c.id).where(vehicles.c.plate == normalise_plate(ref))
            )
            label = f"vehicle {normalise_plate(ref)}"
        else:
            beneficiary = conn.scalar(sa.select(households.c.id).where(households.c.ref == ref))
            label = f"household {ref}"
        if beneficiary is None:
            raise NotFound(f"no {'vehicle' if per_vehicle else 'household'} {ref!r} is registered")
        query = sa.select(cycles).where(cycles.c.programme_id == programme.id)
        if starts_on is not None:
            query = query.where(cycles.c.starts_on == starts_on)
        cycle = conn.execute(query.order_by(cycles.c.starts_on.desc()).limit(1)).one_or_none()
        if starts_on is not None and cycle is None:
            raise NotFound(f"{programme_name} has no cycle starting on {starts_on.isoformat()}")
        if cycle is not None:
            stored = conn.execute(
                sa.select(entitlements.c.id).where(
                    entitlements.c.cycle_id == cycle.id,
                    entitlements.c.beneficiary_kind == ("vehicle" if per_vehicle else "household"),
                    entitlements.c.beneficiary_id == beneficiary,
                )
            ).scalar_one_or_none()
            if stored is not None:
                return _explain_stored(conn, int(stored), language, None)
        known = catalogue(conn)
        if cycle is not None:
            if cycle.policy_id is None:
                raise NotFound(f"cycle {cycle.id} was opened before policies were published")
            policy = policy_by_id(conn, int(cycle.policy_id), programme, known)
            starts = cycle.starts_on
        else:
            _, policy = current_policy(conn, programme, known)
            starts = starts_on or date.today()
        row = conn.exec_driver_sql(
            compile_select(policy, dialect_of(conn), starts, only=int(beneficiary))
        ).one()
        explanation = explain(
            policy, known, load_facts(policy, json.loads(row.facts)), programme.unit, language
        )
        return Explained(
            programme.name,
            label,
            int(cycle.id) if cycle is not None else None,
            starts,
            cycle.ends_on if cycle is not None else None,
            None,
            0,
            explanation,
        )


def schema_attributes(engine: sa.Engine) -> list[Attribute]:
    """Every attribute rules may use: the built-in ones, then the declared ones."""
    with transaction(engine, write=False) as conn:
        return [*BUILT_IN, *attributes_repo.load(conn).values()]


# -- reports ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ReportRow:
    group: list[str]
    beneficiaries: int
    entitled: int
    granted: int
    redeemed: int

    @property
    def uptake(self) -> float | None:
        return self.redeemed / self.granted if self.granted else None


@dataclass(slots=True)
class ReportResult:
    title: str
    programme: str
    unit: str
    per: str
    columns: list[str]
    cycle_id: int | None
    starts_on: date | None
    rows: list[ReportRow]
    merged: int
    min_group: int


def run_report(engine: sa.Engine, text: str, filename: str, starts_on: date | None = None) -> ReportResult:
    """Coverage and uptake of a programme's cycle (the latest, or the one starting on
    ``starts_on``), grouped as the report says; groups below its minimum are merged."""
    from canasta.policy.compile import compile_report
    from canasta.policy.report import parse_report

    with transaction(engine, write=False) as conn:
        known = catalogue(conn)
        name = _named_programme(text)
        if name is None:
            parse_report(text, filename, known, Owner.HOUSEHOLD)  # says what is wrong
            raise InvalidInput(f"{filename} names no programme")
        programme = _programme(conn, name)
        per = owner_of(programme)
        report = parse_report(text, filename, known, per)
        query = sa.select(cycles.c.id, cycles.c.starts_on).where(cycles.c.programme_id == programme.id)
        if starts_on is not None:
            query = query.where(cycles.c.starts_on == starts_on)
        cycle = conn.execute(query.order_by(cycles.c.starts_on.desc()).limit(1)).one_or_none()
        if starts_on is not None and cycle is None:
            raise NotFound(f"{programme.name} has no cycle starting on {starts_on.isoformat()}")
        sql = compile_report(
            per,
            report.group_by,
            report.where,
            dialect_of(conn),
            cycle.starts_on if cycle else date.today(),
            int(cycle.id) if cycle else None,
        )
        rows: list[ReportRow] = []
        small = ReportRow([f"(groups under {report.min_group})"] * max(1, len(report.group_by)), 0, 0, 0, 0)
        merged = 0
        for found in conn.exec_driver_sql(sql):
            values = list(found)
            groups = ["(not known)" if v is None else str(v) for v in values[: len(report.group_by)]]
            row = ReportRow(groups, *(int(v or 0) for v in values[len(report.group_by) :]))
            if report.group_by and row.beneficiaries < report.min_group:
                merged += 1
                small.beneficiaries += row.beneficiaries
                small.entitled += row.entitled
                small.granted += row.granted
                small.redeemed += row.redeemed
            else:
                rows.append(row)
        if merged:
            rows.append(small)
        return ReportResult(
            report.title,
            programme.name,
            programme.unit,
            per.value,
            [f.key.split(".", 1)[-1] for f in report.group_by],
            int(cycle.id) if cycle else None,
            cycle.starts_on if cycle else None,
            rows,
            merged,
            report.min_group,
        )
