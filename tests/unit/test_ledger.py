from dataclasses import replace

import pytest

from canasta.domain.ledger import GENESIS_HASH, LedgerEntry, canonical_json, verify_chain


def chain(n: int) -> list[LedgerEntry]:
    entries, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        entry = LedgerEntry.create(
            seq, "redemption", f"2026-11-01T00:00:{seq:02d}.000000Z", {"quantity": seq}, prev
        )
        entries.append(entry)
        prev = entry.entry_hash
    return entries


def head(entries: list[LedgerEntry]) -> tuple[int, str]:
    return entries[-1].seq, entries[-1].entry_hash


def problems(entries: list[LedgerEntry], at: tuple[int, str] | None) -> list[str]:
    return [str(p) for p in verify_chain(entries, at)]


def test_canonical_encoding_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["ñ", None, True]}) == '{"a":["ñ",null,true],"b":1}'.encode()


@pytest.mark.parametrize("value", [1.5, {"x": 0.1}, {1: "a"}, object()])
def test_values_without_a_canonical_encoding_are_refused(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


def test_an_intact_chain_verifies() -> None:
    entries = chain(5)
    assert problems(entries, head(entries)) == []
    assert problems([], None) == []


def test_a_changed_entry_is_named() -> None:
    entries = chain(5)
    entries[2] = replace(entries[2], body={"quantity": 999})
    assert problems(entries, head(entries)) == [
        "entry 3: content was changed: its hash no longer matches what was recorded"
    ]


def test_a_changed_entry_with_a_rewritten_hash_breaks_the_next_link() -> None:
    entries = chain(5)
    forged = LedgerEntry.create(
        3, "redemption", entries[2].recorded_at, {"quantity": 1}, entries[1].entry_hash
    )
    entries[2] = forged
    assert problems(entries, head(entries)) == [
        "entry 4: link to the previous entry is broken (prev_hash does not match)"
    ]


def test_a_deleted_entry_is_named() -> None:
    entries = chain(5)
    full_head = head(entries)
    del entries[1]
    found = problems(entries, full_head)
    assert found[0] == "entry 2: entry 2 is missing"
    assert "entry 3: link to the previous entry is broken (prev_hash does not match)" in found


def test_deleted_entries_at_the_end_are_caught_by_the_head() -> None:
    entries = chain(5)
    full_head = head(entries)
    assert problems(entries[:3], full_head) == ["entry 4: entries 4 to 5 are missing from the end"]


def test_an_inserted_entry_is_named() -> None:
    entries = chain(4)
    extra = LedgerEntry.create(5, "redemption", "2026-11-02T00:00:00.000000Z", {"quantity": 1}, "f" * 64)
    found = problems([*entries, extra], head(entries))
    assert "entry 5: link to the previous entry is broken (prev_hash does not match)" in found
    assert "entry 5: entries were added after the recorded head" in found


def test_reordered_entries_are_named() -> None:
    entries = chain(5)
    entries[1], entries[2] = entries[2], entries[1]
    found = problems(entries, head(entries))
    assert found, "a swap must be detected"
    assert any(p.startswith("entry 2") or p.startswith("entry 3") for p in found)


def test_every_problem_is_reported_not_only_the_first() -> None:
    entries = chain(6)
    entries[1] = replace(entries[1], body={"quantity": -1})
    entries[4] = replace(entries[4], kind="correction")
    found = problems(entries, head(entries))
    assert [p.split(":")[0] for p in found] == ["entry 2", "entry 5"]


def test_a_head_without_entries_and_entries_without_head_are_caught() -> None:
    entries = chain(2)
    assert problems([], head(entries)) == [
        "entry 2: the ledger head names an entry but no entries are stored"
    ]
    assert problems(entries, None) == ["entry 2: the ledger head says the ledger is empty"]


def test_a_body_tampered_into_a_non_canonical_value_is_named_not_a_crash() -> None:
    entries = chain(3)
    entries[1] = replace(entries[1], body={"quantity": 1.5})
    assert problems(entries, head(entries)) == [
        "entry 2: content was changed: its hash no longer matches what was recorded"
    ]
