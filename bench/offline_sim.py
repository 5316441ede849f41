"""The offline outlet simulation (issue 6) with longer schedules than CI runs.

    .venv/bin/python bench/offline_sim.py [--examples 10] [--steps 60] [--db sqlite|postgresql]

Runs tests/integration/test_offline_simulation.py: 20 outlet processes against a real
server on loopback, with partitions, SIGKILL mid-redemption and mid-sync, and skewed clocks,
``--examples`` schedules chosen by Hypothesis, each outlet's up to ``--steps`` steps. For
every schedule it prints the seed (replay with CANASTA_SIM_SEED), the kills, the
acknowledged redemptions (and how many offline), the journal entries synced, and the worst
over-redemption of a card and in total beside their bounds (docs/offline.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--examples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    env = dict(
        os.environ,
        CANASTA_SIM_EXAMPLES=str(args.examples),
        CANASTA_SIM_STEPS=str(args.steps),
        CANASTA_SIM_TIME_LIMIT=str(max(240, args.steps * 8)),
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/integration/test_offline_simulation.py",
        "-k",
        args.db,
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    found = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [
        line
        for line in found.stdout.splitlines()
        if line.startswith("seed ") or "passed" in line or "failed" in line
    ]
    print("\n".join(lines))
    if found.returncode != 0:
        print(found.stdout[-5000:], found.stderr[-2000:], sep="\n")
    raise SystemExit(found.returncode)


if __name__ == "__main__":
    main()
