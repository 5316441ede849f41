"""Twenty outlet processes against a real server on loopback, with partitions, SIGKILL
mid-redemption and mid-sync, and skewed clocks (issue 6; tests/offline_sim.py).

Hypothesis chooses the seeds; each schedule is built from its seed, which is printed, and
``CANASTA_SIM_SEED=N`` replays one. ``CANASTA_SIM_EXAMPLES`` sets how many schedules run
(2 by default, for CI) and ``CANASTA_SIM_STEPS`` how long each outlet's is (16);
bench/offline_sim.py runs longer ones.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canasta.domain.model import Outlet, OutletKind
from canasta.service import offline
from canasta.service import outlets as outlet_service
from canasta.service.audit import run_audit
from canasta.service.card_tokens import card_payload
from canasta.service.transparency import keyring_of
from tests.helpers import build_world, fuel_cycle_around_today
from tests.offline_sim import check, heal, make_plan

OUTLETS = 20
SHARE = "0.5"  # offline, half of the reference entitlement per card and outlet
DAILY_CAP = "40"
ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = float(os.environ.get("CANASTA_SIM_TIME_LIMIT", "240"))
#: Most steps in one outlet's schedule.
STEPS = int(os.environ.get("CANASTA_SIM_STEPS", "16"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    handle = log.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "canasta", "serve", "--db", url, "--port", str(port)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start in 60 s")


def _spawn(directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.offline_sim", str(directory)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(directory / "stderr.log").open("ab"),
    )


_SEEDS = [int(os.environ["CANASTA_SIM_SEED"])] if os.environ.get("CANASTA_SIM_SEED") else None
_ran: dict[str, int] = {}


@settings(
    max_examples=int(os.environ.get("CANASTA_SIM_EXAMPLES", "2")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.sampled_from(_SEEDS) if _SEEDS else st.integers(0, 2**31 - 1))
def test_outlets_partitioned_killed_and_skewed_lose_nothing_and_stay_within_the_bound(
    engine: sa.Engine, database_url: str, tmp_path: Path, seed: int
) -> None:
    print(f"\noffline simulation seed {seed} (replay: CANASTA_SIM_SEED={seed})")
    run = _ran[database_url] = _ran.get(database_url, 0) + 1
    if run == 1:
        build_world(engine, households=2, vehicles=30)
        fuel_cycle_around_today(engine)
        offline.set_offline_share(engine, "fuel", SHARE)
    rng = random.Random(seed)
    codes = [f"sim{run}-{n:02d}" for n in range(OUTLETS)]
    tokens = outlet_service.create_outlets(
        engine, [Outlet(code, f"Estación {code}", OutletKind.FUEL_STATION, "Norte") for code in codes]
    )
    for code in codes:
        offline.set_daily_cap(engine, code, "fuel", DAILY_CAP)
    (allowance,) = [a for a in offline.allowances(engine, codes[0]) if a.programme == "fuel"]
    with engine.connect() as conn:
        cards = [
            r[0] for r in conn.execute(sa.text("SELECT id FROM cards WHERE beneficiary_kind = 'vehicle'"))
        ]
    payloads = [card_payload(engine, keyring_of(engine), c) for c in rng.sample(cards, 8)]
    work = tmp_path / f"run{run}"
    server, base = _serve(
        database_url, work.with_suffix(".server.log") if work.parent.exists() else tmp_path / "s.log"
    )
    directories = []
    try:
        for code in codes:
            directory = work / code
            directory.mkdir(parents=True)
            plan = make_plan(rng, base, code, tokens[code], payloads, rng.randint(STEPS // 2, STEPS))
            (directory / "plan.json").write_text(json.dumps(plan))
            directories.append(directory)
        running = {d: _spawn(d) for d in directories}
        kills = 0
        started = time.monotonic()
        while running:
            if time.monotonic() - started > TIME_LIMIT:
                pytest.fail(f"seed {seed}: the schedule did not finish in {TIME_LIMIT:.0f} s")
            time.sleep(rng.uniform(0.02, 0.2))
            if rng.random() < 0.3:
                victim = rng.choice(list(running))
                running[victim].send_signal(signal.SIGKILL)
                kills += 1
            for directory, process in list(running.items()):
                status = process.poll()
                if status is None:
                    continue
                if status == 0:
                    del running[directory]
                elif status == -signal.SIGKILL:
                    running[directory] = _spawn(directory)  # restarted: it resumes its plan
                else:
                    errors = (directory / "stderr.log").read_text()[-3000:]
                    pytest.fail(f"seed {seed}: worker {directory.name} failed: {errors}")
        heal(directories)
        finding = check(
            engine, directories, allowance.share_permille, allowance.reference, allowance.daily_cap
        )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    print(
        f"seed {seed}: {OUTLETS} outlets, {kills} random kills, {finding.acknowledged} acknowledged "
        f"redemptions ({finding.offline} offline), {finding.synced_entries} journal entries synced; "
        f"worst card over-redemption {finding.worst_card_over} (its bound {finding.worst_card_bound}), "
        f"total {finding.total_over} (bound {finding.total_bound}), in thousandths of a litre"
    )
    assert not finding.problems, f"seed {seed}: {finding.problems[:10]}"
    # The schedule must have exercised what it checks: offline service, and over-redemption.
    assert finding.offline > 0, f"seed {seed}: no redemption was served offline"
    report = run_audit(engine)
    assert report.ok, f"seed {seed}: {report.problems[:5]}"
