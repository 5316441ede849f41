#!/usr/bin/env python3
"""Set-up and everyday tasks, needing nothing but Python 3.11+.

    python3 tasks.py demo [options]   build the environment if needed, then run `canasta demo`
    python3 tasks.py test [pytest args]  build it if needed, then lint, type-check and test
                                         (as root, apt-get installs chromium for the browser tests)

The virtual environment lives in .venv and is rebuilt when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".canasta-installed"


def _python() -> str:
    return str(BIN / "python")


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must run on old Pythons to say so
        sys.exit(f"canasta needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not _has_pip():
        print("Creating the virtual environment in .venv …", flush=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as failed:
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit(
                f"Could not create a virtual environment with pip in .venv ({failed}). On "
                "Debian or Ubuntu, install python3-venv (apt-get install python3-venv) and "
                "run this again."
            )
    print("Installing canasta and its test tools into .venv …", flush=True)
    subprocess.run([_python(), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([_python(), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def _has_pip() -> bool:
    if not (BIN / "python").exists():
        return False
    check = subprocess.run([_python(), "-m", "pip", "--version"], capture_output=True, check=False)
    return check.returncode == 0


def run(*command: str) -> int:
    return subprocess.run(list(command), cwd=ROOT).returncode


def ensure_chromium() -> None:
    """The browser tests (tests/browser) drive Debian's chromium: install it with apt-get when
    it is missing and this is root on a system that has apt-get; otherwise say they will skip."""
    if os.environ.get("CANASTA_CHROMIUM") or shutil.which("chromium"):
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        why = "apt-get is not available" if apt is None else "installing it needs root"
        print(
            f"Note: chromium is not installed and {why}, so the browser tests will skip (fail "
            "with CANASTA_REQUIRE_BROWSER=1): apt-get install chromium, or set CANASTA_CHROMIUM "
            "to a Chromium binary.",
            flush=True,
        )
        return
    # fonts-liberation: chromium only recommends a font, and without one pages render no text.
    install = [apt, "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-liberation"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("Installing Debian's chromium for the browser tests:", flush=True)
    print("$", " ".join(["apt-get", *install[1:]]), flush=True)
    if subprocess.run(install, env=env, check=False).returncode != 0:
        print("$ apt-get update -q", flush=True)
        subprocess.run([apt, "update", "-q"], env=env, check=False)
        print("$", " ".join(["apt-get", *install[1:]]), flush=True)
        subprocess.run(install, env=env, check=False)
    if shutil.which("chromium") is None:
        print(
            "Note: chromium could not be installed, so the browser tests will skip (fail with "
            "CANASTA_REQUIRE_BROWSER=1).",
            flush=True,
        )


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    ensure_environment()
    task, rest = argv[0], argv[1:]
    if task == "demo":
        return subprocess.run([str(BIN / "canasta"), "demo", *rest]).returncode
    for step in (
        [str(BIN / "ruff"), "check", "src", "tests", "bench", "tasks.py"],
        [str(BIN / "ruff"), "format", "--check", "src", "tests", "bench", "tasks.py"],
        [str(BIN / "mypy")],
    ):
        print("$", " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)), flush=True)
        if run(*step):
            return 1
    ensure_chromium()
    return run(_python(), "-m", "pytest", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
