"""Roles are data: role -> scopes, readable by a security reviewer in one screen."""

from typing import Final

VIEWER: Final = frozenset({"items:read", "reports:read"})
MEMBER: Final = VIEWER | {"items:write"}
ADMIN: Final = MEMBER | {"members:read", "members:write", "clients:read", "clients:write"}
OWNER: Final = ADMIN | {"audit:read"}
AUDITOR: Final = frozenset({"audit:read", "members:read", "clients:read"})

ROLES: Final[dict[str, frozenset[str]]] = {
    "viewer": VIEWER,
    "member": MEMBER,
    "admin": ADMIN,
    "owner": OWNER,
    "auditor": AUDITOR,
}


def role_scopes(role: str) -> frozenset[str]:
    """Scopes a role grants; an unknown role (e.g. one removed from code) grants nothing."""
    return ROLES.get(role, frozenset())
