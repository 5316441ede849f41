"""How explanations look in a terminal (the CLI and the demo share it)."""

from __future__ import annotations

from rich.console import Console

from canasta.domain.quantity import format_milli
from canasta.policy.explain import APPEAL
from canasta.service.rules import Explained


def print_explanation(console: Console, explained: Explained) -> None:
    """An explanation as the terminal shows it: each clause with its values, then the quota."""
    e = explained.explanation
    es = e.language == "es"
    when = f"{explained.starts_on}" + (f" – {explained.ends_on}" if explained.ends_on else "")
    console.print(
        f"[bold]{explained.programme}[/bold] · {explained.beneficiary} · {'ciclo' if es else 'cycle'} {when}"
    )
    console.print(
        f"{'Política' if es else 'Policy'} v{e.policy_version} (sha256 {e.policy_sha256[:16]}…)", markup=False
    )
    console.print(e.summary)
    head = (
        ("Debe cumplirse todo esto:" if es else "All of these must hold:")
        if e.combine == "and"
        else ("Basta con que se cumpla una:" if es else "At least one of these must hold:")
    )
    console.print(head)
    for clause in e.clauses:
        used = "; ".join(f"{what}: {value}" for what, value in clause.used)
        mark = {True: "✓", False: "✗", None: "?"}[clause.holds]
        console.print(
            f"  {mark} {clause.text} → {clause.result}" + (f"  ({used})" if used else ""), markup=False
        )
    if e.eligible is True:
        console.print(("Cuota: " if es else "Quota: ") + e.quota_text, markup=False)
        if e.quota_used:
            console.print("  " + "; ".join(f"{what}: {value}" for what, value in e.quota_used), markup=False)
        console.print(
            f"  = {e.quota_raw} {e.unit}"
            + "".join(f", {a}" for a in e.adjustments)
            + f" → {format_milli(e.quantity)} {e.unit}",
            markup=False,
        )
    console.print(APPEAL[e.language])
