"""The offline outlet simulation (issue 6): schedules, the outlet worker process, and the
checks after healing. Used by tests/integration/test_offline_simulation.py and
bench/offline_sim.py.

A worker is one outlet: ``python -m tests.offline_sim DIR`` runs the plan in ``DIR/plan.json``
step by step (redeem a scanned card, sync, lose or regain the network), resuming after the
last finished step when restarted. It appends every redemption the cashier was told to hand
out to ``DIR/acks.jsonl`` (flushed to disk) before moving on. Its clock is skewed by the
plan's ``skew_seconds``. The network is a switch in ``DIR/net``; a step may carry ``die``,
where the worker kills itself with SIGKILL (a ``lossy`` network lets requests reach the
server and loses the answers): ``after-append`` (journal written, nothing sent),
``before-settle`` (the server answered, the journal not yet told), ``before-mark`` (the server
took a sync batch, the journal not yet marked). The orchestrator also sends SIGKILL at
random moments.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

DIE_POINTS = ("after-append", "before-settle", "before-mark")


def make_plan(
    rng: random.Random, server: str, outlet: str, token: str, cards: list[str], steps: int
) -> dict[str, Any]:
    """One outlet's schedule: redemptions of random cards, syncs, partitions, and deaths."""
    plan: list[dict[str, Any]] = []
    down = False
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.15:
            down = not down
            # down: nothing gets through; lossy: requests reach the server, answers are lost
            plan.append({"op": rng.choice(("down", "lossy")) if down else "up"})
        elif roll < 0.3:
            step: dict[str, Any] = {"op": "sync"}
            if rng.random() < 0.2:
                step["die"] = "before-mark"
            plan.append(step)
        else:
            step = {"op": "redeem", "card": rng.choice(cards), "qty": str(rng.choice((1, 2, 3, 5, 8)))}
            if rng.random() < 0.1:
                step["die"] = rng.choice(DIE_POINTS[:2])
            plan.append(step)
    plan.append({"op": "up"})
    return {
        "server": server,
        "outlet": outlet,
        "token": token,
        "skew_seconds": rng.choice((0, 0, rng.randint(-13 * 3600, 13 * 3600))),
        "steps": plan,
    }


class _Switch(httpx.BaseTransport):
    def __init__(self, flag: Path) -> None:
        self.flag = flag
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        state = self.flag.read_text() if self.flag.exists() else "up"
        if state == "down":
            raise httpx.ConnectError("partitioned", request=request)
        answer = self.inner.handle_request(request)
        if state == "lossy":
            answer.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return answer


def _durable_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def work(directory: Path) -> None:
    from canasta.outlet.client import OutletClient, OutletError

    plan = json.loads((directory / "plan.json").read_text())
    net = directory / "net"
    progress_file = directory / "progress"
    done = int(progress_file.read_text()) if progress_file.exists() else 0
    http = httpx.Client(base_url=plan["server"], transport=_Switch(net), timeout=2.0)
    home = directory / "outlet"
    if not (home / "outlet.json").exists():
        client = OutletClient.enrol(home, plan["server"], plan["outlet"], plan["token"], http)
    else:
        client = OutletClient(home, http)
    skew = timedelta(seconds=int(plan["skew_seconds"]))
    journal = client.journal
    for index in range(done, len(plan["steps"])):
        step = plan["steps"][index]
        die = step.get("die")
        marker = directory / f"died-{index}"
        if die and marker.exists():
            die = None  # each planned death happens once; the step then runs through
        elif die:
            _durable_write(marker, die)
        if step["op"] in ("down", "lossy", "up"):
            _durable_write(net, step["op"])
        elif step["op"] == "sync":
            if die == "before-mark":
                original = journal.mark_synced

                def mark_then_die(outcomes: Any, _original: Any = original) -> None:
                    _die()

                journal.mark_synced = mark_then_die  # type: ignore[method-assign]
            with contextlib.suppress(OutletError):  # partitioned: the entries wait
                client.sync()
        else:
            if die == "after-append":
                original_append = journal.append

                def append_then_die(*args: Any, _original: Any = original_append) -> Any:
                    _original(*args)
                    _die()

                journal.append = append_then_die  # type: ignore[method-assign, assignment]
            elif die == "before-settle":

                def settle_die(*args: Any) -> Any:
                    _die()

                journal.settle = settle_die  # type: ignore[method-assign, assignment]
            result = client.redeem(step["card"], "fuel", step["qty"], now=datetime.now(UTC) + skew)
            if result.mode in ("online", "offline"):
                with (directory / "acks.jsonl").open("a") as acks:
                    acks.write(
                        json.dumps(
                            {
                                "counter": result.counter,
                                "mode": result.mode,
                                "qty": result.quantity,
                                "card": result.card,
                            }
                        )
                        + "\n"
                    )
                    acks.flush()
                    os.fsync(acks.fileno())
        _durable_write(progress_file, str(index + 1))
    client.close()


@dataclass(frozen=True, slots=True)
class Finding:
    acknowledged: int
    offline: int
    synced_entries: int
    worst_card_over: int
    worst_card_bound: int
    total_over: int
    total_bound: int
    problems: list[str]


def heal(directories: list[Path]) -> None:
    """The network is back everywhere: each outlet syncs until nothing waits."""
    from canasta.outlet.client import OutletClient

    for directory in directories:
        client = OutletClient(directory / "outlet")
        for _ in range(5):
            if client.sync().waiting == 0:
                break
        client.close()


def check(
    engine: Any, directories: list[Path], share_permille: int, reference: int, daily_cap: int
) -> Finding:
    """What must hold after healing (docs/offline.md): every acknowledged redemption is on
    the server, counted once, every counter accounted for, and over-redemption within the
    bound."""
    import sqlite3

    import sqlalchemy as sa

    from canasta.adapters.tables import offline_conflicts, outlet_journal, redemptions
    from canasta.domain.redemption import key_hash

    problems: list[str] = []
    acknowledged = offline_count = synced = 0
    card_outlets: dict[str, set[str]] = {}
    outlet_days: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for directory in directories:
            plan = json.loads((directory / "plan.json").read_text())
            outlet = plan["outlet"]
            local = sqlite3.connect(directory / "outlet" / "journal.db")
            rows = local.execute(
                "SELECT counter, card, state, day, synced FROM entries ORDER BY counter"
            ).fetchall()
            local.close()
            for counter, card, state, day, is_synced in rows:
                if not is_synced:
                    problems.append(f"{outlet}: journal entry {counter} was never synced")
                if state == "offline":
                    card_outlets.setdefault(card, set()).add(outlet)
                    outlet_days.setdefault(outlet, set()).add(day)
            server = {
                int(r.counter): r
                for r in conn.execute(
                    sa.select(
                        outlet_journal.c.counter, outlet_journal.c.outcome, outlet_journal.c.ledger_seq
                    ).where(outlet_journal.c.outlet_code == outlet)
                )
            }
            synced += len(server)
            highest = rows[-1][0] if rows else 0
            missing = sorted(set(range(1, highest + 1)) - set(server))
            if missing:
                problems.append(f"{outlet}: the server lacks journal entries {missing[:5]}")
            for counter, found in server.items():  # nothing is counted for an entry handed out never
                if found.outcome == "void" and conn.scalar(
                    sa.select(sa.func.count()).where(
                        redemptions.c.key_hash == key_hash(outlet, f"journal-{counter}")
                    )
                ):
                    problems.append(f"{outlet}: void entry {counter} has a redemption")
            acks_file = directory / "acks.jsonl"
            acks = (
                [json.loads(line) for line in acks_file.read_text().splitlines()]
                if acks_file.exists()
                else []
            )
            for ack in acks:
                acknowledged += 1
                offline_count += ack["mode"] == "offline"
                found = server.get(int(ack["counter"]))
                if found is None or found.outcome == "void":
                    problems.append(
                        f"{outlet}: acknowledged entry {ack['counter']} is lost ({found and found.outcome})"
                    )
                    continue
                counted = conn.execute(
                    sa.select(
                        sa.func.count(), sa.func.coalesce(sa.func.sum(redemptions.c.quantity), 0)
                    ).where(redemptions.c.key_hash == key_hash(outlet, f"journal-{ack['counter']}"))
                ).one()
                conflict = conn.execute(
                    sa.select(offline_conflicts.c.applied, offline_conflicts.c.shortfall).where(
                        offline_conflicts.c.outlet_code == outlet,
                        offline_conflicts.c.counter == int(ack["counter"]),
                    )
                ).first()
                recorded = int(counted[1]) + (int(conflict.shortfall) if conflict is not None else 0)
                if recorded != int(ack["qty"]):
                    problems.append(
                        f"{outlet}: acknowledged entry {ack['counter']} of {ack['qty']} is recorded as "
                        f"{recorded} in {counted[0]} redemptions"
                    )
        over: dict[str, int] = {}
        for row in conn.execute(
            sa.select(
                offline_conflicts.c.card_id, offline_conflicts.c.shortfall, offline_conflicts.c.outlet_code
            ).where(
                offline_conflicts.c.outlet_code.in_(
                    [json.loads((d / "plan.json").read_text())["outlet"] for d in directories]
                ),
            )
        ):
            over[row.card_id] = over.get(row.card_id, 0) + int(row.shortfall)
    cap = reference * share_permille // 1000
    worst_over = worst_bound = 0
    for card, amount in over.items():
        bound = len(card_outlets.get(card, ())) * cap
        if amount > bound:
            problems.append(f"card {card}: over-redeemed {amount}, above its bound {bound}")
        if amount > worst_over:
            worst_over, worst_bound = amount, bound
    total_bound = sum(len(days) * daily_cap for days in outlet_days.values())
    total = sum(over.values())
    if total > total_bound:
        problems.append(f"total over-redemption {total} is above the bound {total_bound}")
    return Finding(acknowledged, offline_count, synced, worst_over, worst_bound, total, total_bound, problems)


if __name__ == "__main__":
    work(Path(sys.argv[1]))
