"""The scope catalogue: every scope the platform knows, with the words shown to people."""

from typing import Final

PLATFORM_ADMIN: Final = "platform:admin"

SCOPES: Final[dict[str, str]] = {
    "items:read": "Read the tenant's items",
    "items:write": "Create, change and delete the tenant's items",
    "reports:read": "Read the tenant's reports",
    "members:read": "List the tenant's members",
    "members:write": "Add, change and remove the tenant's members",
    "clients:read": "List the tenant's OAuth2 clients",
    "clients:write": "Create, rotate and revoke the tenant's OAuth2 clients",
    "audit:read": "Read the tenant's audit trail and access matrix",
    PLATFORM_ADMIN: "Administer tenants (platform operators only, bound to no tenant)",
}

TENANT_SCOPES: Final = frozenset(SCOPES) - {PLATFORM_ADMIN}
