"""Declared attributes, published policies, cycle runs and explanations, on both databases."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.adapters.tables import (
    cycles,
    entitlements,
    households,
    ledger_entries,
    ledger_head,
    log_checkpoints,
    persons,
    policies,
)
from canasta.domain.errors import Conflict, ImportRejected, InvalidInput, NotFound
from canasta.domain.model import BeneficiaryKind, Household, Person, Programme, Vehicle
from canasta.domain.quantity import to_milli
from canasta.domain.redemption import RedeemQuota
from canasta.policy.language import PolicyRejected
from canasta.service import cards as card_service
from canasta.service import programmes as programme_service
from canasta.service import registry as registry_service
from canasta.service import rules
from canasta.service.audit import run_audit

SCHEMA = """\
[attributes.monthly_income]
type = "decimal"
unit = "PEN"
belongs_to = "household"
category = "income and assets"
purpose = "Income the household declared at registration, for means testing."
label_es = "ingreso mensual"

[attributes.disabled]
type = "boolean"
unit = ""
belongs_to = "person"
category = "disability and care needs"
purpose = "Whether the member lives with a disability that needs daily care."
label_en = "a disability"
label_es = "discapacidad"

[attributes.engine_cc]
type = "integer"
unit = "cc"
belongs_to = "vehicle"
category = "vehicle"
purpose = "Engine size, for fuel quotas that follow consumption."
"""

FOOD_V2 = """\
programme = "food"
version = 2
eligible = \"\"\"
monthly_income < 1500
  OR COUNT(*) FILTER (WHERE disabled) > 0
\"\"\"
quota = "10 + 4 * members + 3 * COUNT(*) FILTER (WHERE age < 5)"
cap = 30
rounding = "down"
step = 0.5
"""

PEOPLE = """\
registration_id,given_names,family_name,second_family_name,sex,date_of_birth,region,municipality,address,phone,household_ref,monthly_income,disabled
P1,Ana,Quispe,Mamani,F,1980-03-01,Puno,Juliaca,Jr Lima 1,,H1,800,no
P2,Luis,Quispe,Huanca,M,2023-05-01,Puno,Juliaca,Jr Lima 1,,H1,,yes
P3,Rosa,Flores,,F,1950-01-01,Cusco,Cusco,Av Sol 2,,H2,2500,
P4,Juan,Perez,,M,1990-01-01,Lima,Lima,Av X 3,,H3,1200.5,no
P5,Eva,Perez,,F,1991-01-01,Lima,Lima,Av X 3,,H3,1200.5,
P6,Teo,Soto,,M,1970-01-01,Lima,Lima,Av Y 4,,H4,,
"""


def food_world(engine: sa.Engine, tmp_path: Path) -> None:
    rules.declare_schema(engine, SCHEMA, "schema.toml")
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    registry_service.import_registrations_file(engine, people, today=date(2026, 11, 29))
    programme_service.create_programme(
        engine,
        Programme(
            "food", "kg", BeneficiaryKind.HOUSEHOLD, 30, quota_fixed=to_milli(5), quota_per_member=to_milli(2)
        ),
    )


def granted(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(households.c.ref, entitlements.c.quantity).join(
                    households, households.c.id == entitlements.c.beneficiary_id
                )
            ).all()
        )


def test_declared_values_are_imported_and_stored(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    with engine.connect() as conn:
        income: dict[str, object] = dict(
            conn.exec_driver_sql("SELECT ref, attr_monthly_income FROM households").all()
        )
        disabled: dict[str, object] = dict(
            conn.exec_driver_sql("SELECT registration_id, attr_disabled FROM persons").all()
        )
    assert income == {"H1": 800.0, "H2": 2500.0, "H3": 1200.5, "H4": None}
    assert {k: None if v is None else bool(v) for k, v in disabled.items()} == {
        "P1": False,
        "P2": True,
        "P3": None,
        "P4": False,
        "P5": None,
        "P6": None,
    }


def test_bad_declared_values_are_rejected_with_row_and_field(engine: sa.Engine, tmp_path: Path) -> None:
    rules.declare_schema(engine, SCHEMA, "schema.toml")
    people = tmp_path / "people.csv"
    people.write_text(
        PEOPLE.replace(
            "P1,Ana,Quispe,Mamani,F,1980-03-01,Puno,Juliaca,Jr Lima 1,,H1,800,no",
            "P1,Ana,Quispe,Mamani,F,1980-03-01,Puno,Juliaca,Jr Lima 1,,H1,ochocientos,quizá",
        ).replace(
            "P5,Eva,Perez,,F,1991-01-01,Lima,Lima,Av X 3,,H3,1200.5,",
            "P5,Eva,Perez,,F,1991-01-01,Lima,Lima,Av X 3,,H3,1300,",
        ),
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as rejected:
        registry_service.import_registrations_file(engine, people, today=date(2026, 11, 29))
    found = {(p.row, p.field): p.reason for p in rejected.value.problems}
    assert "'ochocientos' is not a number" in found[(1, "monthly_income")]
    assert "'quizá' is not yes or no" in found[(1, "disabled")]
    assert "household 'H3' has monthly_income 1200.5 on row 4 but 1300.0 here" in found[(5, "monthly_income")]
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(persons)) == 0


def test_an_undeclared_column_is_refused_not_kept(engine: sa.Engine, tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")  # nothing declared yet
    with pytest.raises(ImportRejected) as rejected:
        registry_service.import_registrations_file(engine, people, today=date(2026, 11, 29))
    assert {p.field for p in rejected.value.problems} == {"monthly_income", "disabled"}
    assert all("undeclared columns are refused" in p.reason for p in rejected.value.problems)


def test_vehicle_attributes_are_imported(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    cars = tmp_path / "vehicles.csv"
    cars.write_text("plate,kind,household_ref,engine_cc\nAB-123,car,H1,1600\nCD 456,motorcycle,H2,\n")
    registry_service.import_vehicles_file(engine, cars)
    with engine.connect() as conn:
        assert dict(conn.exec_driver_sql("SELECT plate, attr_engine_cc FROM vehicles").all()) == {
            "AB123": 1600,
            "CD456": None,
        }


def test_redeclaring_adds_drops_and_guards_what_policies_use(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    without_engine = SCHEMA[: SCHEMA.index("[attributes.engine_cc]")]
    change = rules.declare_schema(
        engine,
        without_engine + '[attributes.rooms]\ntype = "integer"\nunit = ""\n'
        'belongs_to = "household"\ncategory = "household composition"\n'
        'purpose = "Rooms the household sleeps in."\n',
        "v2.toml",
    )
    assert (change.added, change.removed) == (["rooms"], ["engine_cc"])
    with engine.connect() as conn:
        names = {c["name"] for c in sa.inspect(conn).get_columns("vehicles")}
    assert "attr_engine_cc" not in names
    with pytest.raises(ImportRejected, match="cannot replace") as refused:
        rules.declare_schema(
            engine, SCHEMA.replace("[attributes.disabled]", "[attributes.disability]"), "v3.toml"
        )
    assert "is used by published policy food v2" in str(refused.value.problems[0])
    retyped = SCHEMA.replace('type = "decimal"', 'type = "integer"')
    with pytest.raises(ImportRejected) as refused:
        rules.declare_schema(engine, retyped, "v4.toml")
    assert "type and owner cannot change" in str(refused.value.problems[0])


def test_publishing_is_versioned_immutable_and_in_the_ledger(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    published = rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    assert (published.version, published.supersedes) == (2, 1)
    with pytest.raises(Conflict, match="already published as food version 2"):
        rules.publish_policy(engine, FOOD_V2, "again.toml")
    with pytest.raises(Conflict, match="publish this as version 3 or later"):
        rules.publish_policy(engine, FOOD_V2.replace("cap = 30", "cap = 31"), "older.toml")
    with pytest.raises(PolicyRejected, match="no such programme"):
        rules.publish_policy(engine, FOOD_V2.replace('"food"', '"fuel"'), "fuel.toml")
    with engine.connect() as conn:
        kinds = conn.scalars(sa.select(ledger_entries.c.kind).order_by(ledger_entries.c.seq)).all()
    assert kinds == ["policy-published", "policy-published"]
    assert rules.published_text(engine, "food") == (2, published.sha256, FOOD_V2)
    assert run_audit(engine).ok
    with engine.begin() as conn:
        conn.execute(
            policies.update().where(policies.c.version == 2).values(text=FOOD_V2.replace("30", "300"))
        )
    problems = run_audit(engine).problems
    assert any("policy food version 2: its text no longer hashes" in p for p in problems), problems


def test_a_cycle_run_grants_from_the_published_policy(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    summary = programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    # H1: 10 + 4×2 + 3×1 (a child under 5) = 21; H2: income 2500, nobody disabled → nothing;
    # H3: income 1200.5 → 10 + 8 = 18; H4: income not known, nobody disabled → nothing.
    assert granted(engine) == {"H1": 21000, "H3": 18000}
    assert (summary.entitlements, summary.total) == (2, 39000)
    with engine.connect() as conn:
        stamped = conn.execute(sa.select(entitlements.c.policy_id, entitlements.c.facts)).all()
        current = conn.scalar(sa.select(policies.c.id).where(policies.c.version == 2))
    assert {row.policy_id for row in stamped} == {current}
    assert sorted(json.loads(row.facts) for row in stamped) == [[800.0, 1, 2, 1], [1200.5, 0, 2, 0]]
    assert run_audit(engine).ok


def test_a_rerun_replaces_until_the_first_redemption(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    assert granted(engine) == {"H1": 9000, "H2": 7000, "H3": 9000, "H4": 7000}  # v1: 5 + 2 per member
    rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    assert granted(engine) == {"H1": 21000, "H3": 18000}
    assert run_audit(engine).ok  # the audit holds the cycle to its last run
    card = next(c for c in card_service.issue_missing_cards(engine) if c.holder == "H1")
    SqlRedemptionStore(engine).run_batch(
        [RedeemQuota(card.card_id, "food", 1000, "shop-1", "k1")], lambda: "2026-12-02T10:00:00.000000Z"
    )
    with pytest.raises(Conflict, match="already has 1 redemption"):
        programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    with pytest.raises(Conflict, match="already has an open cycle"):
        programme_service.run_cycle(engine, "food", date(2027, 1, 1))
    programme_service.close_cycle(engine, "food")
    with pytest.raises(Conflict, match="closed cycles are not run again"):
        programme_service.run_cycle(engine, "food", date(2026, 12, 1))


def test_explanations_use_the_facts_stored_at_the_run(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    with engine.begin() as conn:  # the registry changes after the run
        conn.exec_driver_sql("UPDATE households SET attr_monthly_income = 5000")
    explained = rules.explain_beneficiary(engine, "food", "H1", date(2026, 12, 1))
    e = explained.explanation
    assert e.eligible is True and e.quantity == 21000 and explained.granted == 21000
    assert e.clauses[0].used == [("monthly income", "800 PEN")]
    assert e.clauses[1].text == "number of members with a disability is more than 0"
    spanish = rules.explain_beneficiary(engine, "food", "H1", None, "es").explanation
    assert spanish.clauses[0].text == "ingreso mensual es menor que 1500"
    # H2 got nothing: the explanation reads the registry as the cycle's policy does.
    refused = rules.explain_beneficiary(engine, "food", "H2").explanation
    assert refused.eligible is False and refused.quantity == 0
    assert refused.clauses[0].used == [("monthly income", "5000 PEN")]
    with pytest.raises(NotFound):
        rules.explain_beneficiary(engine, "food", "H9")
    with pytest.raises(NotFound):
        rules.explain_beneficiary(engine, "food", "H1", date(2025, 1, 1))


def test_an_explanation_needs_the_holders_own_card(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    issued = {c.holder: c.card_id for c in card_service.issue_missing_cards(engine)}
    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                sa.select(households.c.ref, entitlements.c.id).join(
                    households, households.c.id == entitlements.c.beneficiary_id
                )
            ).all()
        )
    mine = rules.explain_entitlement(engine, ids["H1"], card=issued["H1"])
    assert mine.entitlement_id == ids["H1"]
    with pytest.raises(NotFound):
        rules.explain_entitlement(engine, ids["H1"], card=issued["H2"])
    with pytest.raises(NotFound):
        rules.explain_entitlement(engine, 999_999, card=issued["H1"])


def test_the_impact_preview_counts_gains_losses_and_changes(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    _, _, v1 = rules.published_text(engine, "food")
    impact = rules.diff_policies(engine, v1, "v1", FOOD_V2, "v2", date(2026, 12, 1))
    totals = impact.totals
    assert (totals.total, totals.gain, totals.lose, totals.more, totals.less, totals.same) == (
        4,
        0,
        2,
        2,
        0,
        0,
    )
    assert (totals.before, totals.after) == (32000, 39000)
    assert {r.region: (r.lose, r.more) for r in impact.regions} == {
        "Cusco": (1, 0),
        "Lima": (1, 1),
        "Puno": (0, 1),
    }
    assert [e.ref for e in impact.examples["lose"]] == ["H2", "H4"]
    assert impact.examples["more"][0].after.quantity == 21000
    with pytest.raises(InvalidInput):
        rules.diff_policies(engine, v1, "v1", FOOD_V2.replace('"food"', '"fuel"'), "x", None)


def test_vehicle_policies_read_the_vehicle_and_its_household(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    registry_service.import_vehicles(
        engine,
        [
            Vehicle("AB1", "car", "H1", {"engine_cc": 1600}),
            Vehicle("AB2", "motorcycle", "H2", {"engine_cc": 125}),
        ],
    )
    programme_service.create_programme(
        engine, Programme("fuel", "litre", BeneficiaryKind.VEHICLE, 30, quota_fixed=to_milli(40))
    )
    rules.publish_policy(
        engine,
        'programme = "fuel"\nversion = 2\n'
        "eligible = \"household.monthly_income < 2000 OR kind = 'motorcycle'\"\n"
        "quota = \"CASE kind WHEN 'motorcycle' THEN 20 ELSE engine_cc / 40 END\"\n",
        "fuel.toml",
    )
    programme_service.run_cycle(engine, "fuel", date(2026, 12, 1))
    with engine.connect() as conn:
        rows: dict[str, object] = dict(
            conn.exec_driver_sql(
                "SELECT v.plate, e.quantity FROM entitlements e JOIN vehicles v ON v.id = e.beneficiary_id"
            ).all()
        )
    assert rows == {"AB1": 40000, "AB2": 20000}
    explained = rules.explain_beneficiary(engine, "fuel", "ab-1")
    assert explained.beneficiary == "vehicle AB1" and explained.explanation.quantity == 40000


REPORT = """\
title = "Food: coverage by region"
programme = "food"
group_by = ["region"]
min_group = 2
"""


def test_reports_group_and_merge_small_groups(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    result = rules.run_report(engine, REPORT, "r.toml")
    rows = {tuple(r.group): (r.beneficiaries, r.entitled, r.granted) for r in result.rows}
    assert rows == {("Lima",): (2, 1, 18000), ("(groups under 2)",): (2, 1, 21000)}
    assert result.merged == 2
    filtered = rules.run_report(
        engine, REPORT.replace("min_group = 2", 'min_group = 1\nwhere = "members >= 2"'), "r.toml"
    )
    assert {tuple(r.group): r.beneficiaries for r in filtered.rows} == {("Lima",): 1, ("Puno",): 1}
    with pytest.raises(NotFound):
        rules.run_report(engine, REPORT, "r.toml", date(2020, 1, 1))


def test_households_keep_their_values_when_members_are_added(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    more = tmp_path / "more.csv"
    header = PEOPLE.splitlines()[0]
    more.write_text(f"{header}\nP7,Ivo,Soto,,M,2000-01-01,Lima,Lima,Av Y 4,,H4,100,\n", encoding="utf-8")
    with pytest.raises(ImportRejected, match="nothing was imported") as rejected:
        registry_service.import_registrations_file(engine, more, today=date(2026, 11, 29))
    assert "already registered; its declared values are not changed" in rejected.value.problems[0].reason
    more.write_text(f"{header}\nP7,Ivo,Soto,,M,2000-01-01,Lima,Lima,Av Y 4,,H4,,\n", encoding="utf-8")
    registry_service.import_registrations_file(engine, more, today=date(2026, 11, 29))
    registry_service.import_households(
        engine,
        [
            Household(
                "H5",
                "Puno",
                "Puno",
                "x",
                [Person("P8", "A", "B", "", "F", date(2000, 1, 1))],
                {"monthly_income": 10.0},
            )
        ],
    )
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT attr_monthly_income FROM households WHERE ref = 'H5'").scalar()
            == 10.0
        )
        assert conn.scalar(sa.select(sa.func.count()).select_from(cycles)) == 0


def test_the_audit_notices_an_entitlement_restamped_or_its_facts_moved(
    engine: sa.Engine, tmp_path: Path
) -> None:
    food_world(engine, tmp_path)
    rules.publish_policy(engine, FOOD_V2, "food-v2.toml")
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    with engine.begin() as conn:
        first = conn.scalar(sa.select(policies.c.id).where(policies.c.version == 1))
        conn.execute(entitlements.update().values(policy_id=first))
    problems = run_audit(engine).problems
    assert any("but cycle 1 ran under" in p for p in problems), problems


def test_a_programme_from_before_policies_runs_under_its_fixed_quota(
    engine: sa.Engine, tmp_path: Path
) -> None:
    food_world(engine, tmp_path)
    with engine.begin() as conn:  # as a database upgraded from schema 0001 would be
        conn.execute(policies.delete())
        conn.execute(ledger_entries.delete())
        conn.execute(log_checkpoints.delete())
        conn.execute(
            ledger_head.update().values(
                seq=0, entry_hash="0" * 64, log_frontier=b"", checkpoint_hash="0" * 64
            )
        )
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    assert granted(engine) == {"H1": 9000, "H2": 7000, "H3": 9000, "H4": 7000}
    assert rules.published_text(engine, "food")[0] == 1
    assert run_audit(engine).ok


def test_the_audit_names_an_entitlement_whose_references_are_gone(engine: sa.Engine, tmp_path: Path) -> None:
    food_world(engine, tmp_path)
    programme_service.run_cycle(engine, "food", date(2026, 12, 1))
    with engine.begin() as conn:
        conn.execute(
            entitlements.update().where(entitlements.c.id == 1).values(household_id=999, beneficiary_id=999)
        )
        conn.execute(entitlements.update().where(entitlements.c.id == 2).values(cycle_id=77))
    problems = run_audit(engine).problems
    assert "entitlement 1 names household 999, which does not exist" in problems
    assert "entitlement 2 names cycle 77, which does not exist" in problems
