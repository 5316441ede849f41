"""PIN and password rules, the lockout schedule, and the authorisation matrix (no I/O)."""

from datetime import UTC, datetime, timedelta

import pytest

from canasta.domain.errors import Forbidden, InvalidInput
from canasta.service import credentials
from canasta.service.authz import MATRIX, Permission, Role, Staff, allowed, permissions_of, require

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("pin", ["4826", "90210", "13572468"])
def test_good_pins_pass(pin: str) -> None:
    assert credentials.check_pin(pin) == pin


@pytest.mark.parametrize("pin", ["", "123", "123456789", "12a4", "١٢٣٤", "0000", "1234", "98765", "4 826"])
def test_bad_pins_are_refused(pin: str) -> None:
    with pytest.raises(InvalidInput):
        credentials.check_pin(pin)


def test_the_lock_starts_at_five_failures_and_doubles_up_to_a_day() -> None:
    assert [credentials.lock_after(n, NOW) for n in range(5)] == [None] * 5
    periods = []
    for failures in (5, 10, 15, 20, 25, 30, 35, 500):
        until = credentials.lock_after(failures, NOW)
        assert until is not None
        periods.append(datetime.fromisoformat(until) - NOW)
    assert periods[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert periods[-1] == timedelta(hours=24) and max(periods) == timedelta(hours=24)
    assert credentials.lock_after(6, NOW) is None  # between locks, a wrong try only counts
    assert credentials.locked((NOW + timedelta(seconds=1)).isoformat(), NOW)
    assert not credentials.locked(NOW.isoformat(), NOW) and not credentials.locked(None, NOW)


def test_a_hash_verifies_only_its_secret() -> None:
    stored = credentials.hash_secret("4826")
    assert credentials.verify_secret(stored, "4826")
    assert not credentials.verify_secret(stored, "4827")
    assert not credentials.verify_secret(None, "4826")
    assert not credentials.verify_secret("not a hash", "4826")


def test_every_permission_has_roles_and_duties_are_kept_apart() -> None:
    assert set(MATRIX) == set(Permission)
    assert all(MATRIX[p] for p in Permission)
    assert not allowed(Role.ADMIN, Permission.READ_RECORDS)  # accounts, not people
    assert not allowed(Role.OUTLET_MANAGER, Permission.READ_RECORDS)
    assert permissions_of(Role.AUDITOR).isdisjoint(
        {
            Permission.PUBLISH_POLICIES,
            Permission.DECIDE_APPEALS,
            Permission.RUN_CYCLES,
            Permission.MANAGE_STAFF,
        }
    )
    assert {r for r in Role if allowed(r, Permission.DECIDE_APPEALS)} == {Role.PROGRAMME_OFFICER}
    assert {r for r in Role if allowed(r, Permission.MANAGE_STAFF)} == {Role.ADMIN}
    assert {r for r in Role if allowed(r, Permission.MANAGE_PARTNERS)} == {Role.ADMIN}
    assert all(allowed(r, Permission.DASHBOARD) for r in Role)


def test_require_names_the_role_and_the_permission() -> None:
    clerk = Staff(1, "rita", "Rita", Role.REGISTRAR)
    require(clerk, Permission.READ_RECORDS)
    with pytest.raises(Forbidden, match="registrar may not do this \\(decide-appeals\\)"):
        require(clerk, Permission.DECIDE_APPEALS)


def test_the_real_hash_is_argon2id_with_64_mib_and_three_passes() -> None:
    from argon2 import Type

    profile = credentials.PROFILE
    assert (profile.type, profile.memory_cost, profile.time_cost) == (Type.ID, 65536, 3)
