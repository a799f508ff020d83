"""The guard's decisions as plain functions of data.

The stages call them on every request (policies/tenancy.py, policies/authorize.py), and access
evaluation (policies/evaluation.py) calls the very same ones to explain an answer: one copy of
each rule.
"""

from __future__ import annotations

UNDECLARED = "<undeclared>"


def in_tenant(token_tenant: str | None, path_tenant: str) -> bool:
    """Stage 2: the path's tenant is the token's (a token bound to no tenant has none)."""
    return token_tenant is not None and token_tenant == path_tenant


def missing_scopes(required: frozenset[str], granted: frozenset[str]) -> frozenset[str]:
    """Stage 4: what `granted` lacks of `required`. A check that declares no scope would allow
    anything, so it is never met."""
    if not required:
        return frozenset({UNDECLARED})
    return required - granted
