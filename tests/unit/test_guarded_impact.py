"""What the staff pages may show of a policy's impact: no cell that is one household's."""

from datetime import date

from canasta.service.rules import Impact, RegionImpact, guarded


def _impact(*regions: RegionImpact) -> Impact:
    return Impact("food", "kg", "old", "new", date(2026, 12, 1), list(regions))


def test_a_proposal_narrowed_to_one_household_shows_nothing_of_it() -> None:
    # 40 households in Norte; the proposal keeps one and gives it a quota of its age, 46.
    norte = RegionImpact("Norte", total=40, lose=39, less=1, before=200_000, after=46_000)
    norte.granted_before, norte.granted_after = 40, 1
    (row, totals) = guarded(_impact(norte))
    assert (row.region, row.total, row.lose, row.less, row.after) == ("Norte", 40, 39, None, None)
    assert row.before == 200_000  # a sum over 40 is the region's
    assert totals.after is None and totals.total == 40


def test_small_regions_are_pooled_and_zero_is_no_secret() -> None:
    big = RegionImpact("Norte", total=30, same=30, before=90_000, after=90_000)
    big.granted_before = big.granted_after = 30
    a = RegionImpact("Este", total=4, same=4, before=12_000, after=12_000)
    a.granted_before = a.granted_after = 4
    b = RegionImpact("Sur", total=7, gain=7, after=21_000)
    b.granted_after = 7
    rows = guarded(_impact(big, a, b))
    assert [r.region for r in rows] == ["Norte", "(2)", "(all)"]
    pooled = rows[1]
    # 4 were granted before (a sum withheld), 11 after (shown)
    assert (pooled.total, pooled.same, pooled.gain) == (11, None, None)
    assert (pooled.before, pooled.after) == (None, 33_000)
    assert pooled.lose is None  # zero is shown as "fewer than 10" too: no difference to read
    assert rows[2].total == 41 and rows[2].after == 123_000
