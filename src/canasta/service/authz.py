"""Who may do what on the staff side: the roles, the permissions, and the one matrix that
joins them. Every service function a staff page calls takes the acting ``Staff`` and asks
``require`` first, so the rule holds whatever page, command or template calls it.

The matrix keeps duties apart: the administrator manages accounts and reads no one's
record; the outlet manager runs outlets and sees no households; the auditor reads
everything needed to check the others, with a stated purpose, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from canasta.domain.errors import Forbidden


class Role(StrEnum):
    REGISTRAR = "registrar"
    REVIEWER = "reviewer"
    PROGRAMME_OFFICER = "programme_officer"
    OUTLET_MANAGER = "outlet_manager"
    AUDITOR = "auditor"
    ADMIN = "admin"


#: What each role is called on the pages (and in the access log a beneficiary reads).
ROLE_TITLES: dict[Role, str] = {
    Role.REGISTRAR: "registrar",
    Role.REVIEWER: "reviewer",
    Role.PROGRAMME_OFFICER: "programme officer",
    Role.OUTLET_MANAGER: "outlet manager",
    Role.AUDITOR: "auditor",
    Role.ADMIN: "administrator",
}


class Permission(StrEnum):
    DASHBOARD = "dashboard"
    READ_RECORDS = "read-records"
    REVIEW_DUPLICATES = "review-duplicates"
    VIEW_POLICIES = "view-policies"
    PUBLISH_POLICIES = "publish-policies"
    RUN_CYCLES = "run-cycles"
    VIEW_APPEALS = "view-appeals"
    DECIDE_APPEALS = "decide-appeals"
    VIEW_OUTLETS = "view-outlets"
    MANAGE_OUTLETS = "manage-outlets"
    READ_ACCESS_LOG = "read-access-log"
    MANAGE_STAFF = "manage-staff"
    MANAGE_PARTNERS = "manage-partners"


_R = Role
MATRIX: dict[Permission, frozenset[Role]] = {
    Permission.DASHBOARD: frozenset(Role),
    Permission.READ_RECORDS: frozenset({_R.REGISTRAR, _R.REVIEWER, _R.PROGRAMME_OFFICER, _R.AUDITOR}),
    Permission.REVIEW_DUPLICATES: frozenset({_R.REVIEWER, _R.PROGRAMME_OFFICER}),
    Permission.VIEW_POLICIES: frozenset({_R.PROGRAMME_OFFICER, _R.AUDITOR}),
    Permission.PUBLISH_POLICIES: frozenset({_R.PROGRAMME_OFFICER}),
    Permission.RUN_CYCLES: frozenset({_R.PROGRAMME_OFFICER}),
    Permission.VIEW_APPEALS: frozenset({_R.PROGRAMME_OFFICER, _R.AUDITOR}),
    Permission.DECIDE_APPEALS: frozenset({_R.PROGRAMME_OFFICER}),
    Permission.VIEW_OUTLETS: frozenset({_R.OUTLET_MANAGER, _R.PROGRAMME_OFFICER, _R.AUDITOR}),
    Permission.MANAGE_OUTLETS: frozenset({_R.OUTLET_MANAGER}),
    Permission.READ_ACCESS_LOG: frozenset({_R.AUDITOR, _R.ADMIN}),
    Permission.MANAGE_STAFF: frozenset({_R.ADMIN}),
    Permission.MANAGE_PARTNERS: frozenset({_R.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Staff:
    """A signed-in member of staff."""

    id: int
    username: str
    name: str
    role: Role

    @property
    def role_title(self) -> str:
        return ROLE_TITLES[self.role]


def allowed(role: Role, permission: Permission) -> bool:
    return role in MATRIX[permission]


def require(actor: Staff, permission: Permission) -> None:
    """Refuse unless the actor's role holds ``permission``."""
    if not allowed(actor.role, permission):
        raise Forbidden(f"a {actor.role_title} may not do this ({permission.value})")


def permissions_of(role: Role) -> frozenset[Permission]:
    return frozenset(p for p, roles in MATRIX.items() if role in roles)
