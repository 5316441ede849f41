"""Staff accounts: created by an administrator (or ``canasta staff add``), signed in with a
password, locked after repeated failures."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import staff_users
from canasta.domain.errors import Conflict, InvalidInput, NotFound, SignInRefused
from canasta.domain.text import typed
from canasta.service import credentials, sessions, signin
from canasta.service.authz import Permission, Role, Staff, require

_USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    name: str
    role: Role
    active: bool
    locked_until: str | None


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"there is no role {value!r}; roles: {', '.join(r.value for r in Role)}") from None


def _username(value: str) -> str:
    name = value.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise InvalidInput(
            f"a user name is 2 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter, "
            f"not {value!r}"
        )
    return name


def _display_name(value: str) -> str:
    name = " ".join(typed(value, "display name").split())
    if not 1 <= len(name) <= 100:
        raise InvalidInput("a display name has 1 to 100 characters")
    return name


def create_account(engine: sa.Engine, username: str, name: str, role: str, password: str) -> Account:
    """A new staff account (what ``canasta staff add`` and the administrator's page call)."""
    user, display, kind = _username(username), _display_name(name), _role(role)
    hashed = credentials.hash_secret(credentials.check_password(password))
    with transaction(engine) as conn:
        if conn.scalar(sa.select(staff_users.c.id).where(staff_users.c.username == user)) is not None:
            raise Conflict(f"there is already a staff account {user!r}")
        new_id = conn.execute(
            staff_users.insert().values(
                username=user,
                display_name=display,
                role=kind.value,
                password_hash=hashed,
                active=True,
                created_at=credentials.utc_now().isoformat(timespec="seconds"),
                failed_logins=0,
            )
        ).inserted_primary_key
        assert new_id is not None
        return Account(int(new_id[0]), user, display, kind, True, None)


def add_account(
    engine: sa.Engine, actor: Staff, username: str, name: str, role: str, password: str
) -> Account:
    require(actor, Permission.MANAGE_STAFF)
    return create_account(engine, username, name, role, password)


def list_accounts(engine: sa.Engine, actor: Staff | None = None) -> list[Account]:
    """Every account; ``actor`` None is the operator at the command line."""
    if actor is not None:
        require(actor, Permission.MANAGE_STAFF)
    with transaction(engine, write=False) as conn:
        rows = conn.execute(sa.select(staff_users).order_by(staff_users.c.username)).all()
    return [
        Account(int(r.id), r.username, r.display_name, Role(r.role), bool(r.active), r.locked_until)
        for r in rows
    ]


def set_active(engine: sa.Engine, actor: Staff | None, username: str, active: bool) -> None:
    """Disable an account (its sessions end) or enable it again; unlock it as well."""
    if actor is not None:
        require(actor, Permission.MANAGE_STAFF)
        if _username(username) == actor.username and not active:
            raise InvalidInput("you cannot disable your own account")
    with transaction(engine) as conn:
        found = conn.execute(
            sa.update(staff_users)
            .where(staff_users.c.username == _username(username))
            .values(active=active, failed_logins=0, locked_until=None)
            .returning(staff_users.c.id)
        ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"there is no staff account {username!r}")
        if not active:
            sessions.end_all(conn, "staff", str(found))


def set_password(engine: sa.Engine, username: str, password: str) -> None:
    hashed = credentials.hash_secret(credentials.check_password(password))
    with transaction(engine) as conn:
        found = conn.execute(
            sa.update(staff_users)
            .where(staff_users.c.username == _username(username))
            .values(password_hash=hashed, failed_logins=0, locked_until=None)
            .returning(staff_users.c.id)
        ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"there is no staff account {username!r}")
        # A session opened with the old password (perhaps by whoever learned it) ends.
        sessions.end_all(conn, "staff", str(found))


def authenticate(engine: sa.Engine, username: str, password: str) -> Staff:
    """The staff member these credentials belong to. A wrong name, a wrong password and a
    disabled account get the same answer; after repeated failures the account is locked
    (``signin.check``)."""
    row = signin.check(
        engine,
        staff_users,
        staff_users.c.username,
        username.strip().lower()[:64].replace("\x00", ""),
        staff_users.c.failed_logins,
        staff_users.c.password_hash,
        password,
    )
    if row is None or not row.active:
        raise SignInRefused("the user name or password is wrong, or the account is disabled")
    return Staff(int(row.id), row.username, row.display_name, Role(row.role))


def staff_by_id(engine: sa.Engine, staff_id: int) -> Staff | None:
    """The active account with this id (None once it is disabled)."""
    with transaction(engine, write=False) as conn:
        row = conn.execute(
            sa.select(staff_users).where(staff_users.c.id == staff_id, staff_users.c.active.is_(True))
        ).one_or_none()
    if row is None:
        return None
    return Staff(int(row.id), row.username, row.display_name, Role(row.role))
