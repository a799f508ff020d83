"""SQLAlchemy Core tables: the one description of the schema, mirrored by the migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Callable[[Any], Any]:
        """The dialect's parser and `process_result_value` in one call, not two: a page of items
        converts a hundred of these."""
        parse = self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            parsed = cast(datetime, value if parse is None else parse(value))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

        return process


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", UtcDateTime(), nullable=False, default=utcnow)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    # Stored lower-cased, so the unique constraint is case-insensitive on every backend.
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_active", sa.Boolean(), nullable=False, default=True),
    sa.Column("is_platform_admin", sa.Boolean(), nullable=False, default=False),
    sa.Column("must_change_password", sa.Boolean(), nullable=False, default=False),
    _created(),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("slug", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="active"),
    sa.Column("plan", sa.String(40), nullable=False, default="free"),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False, default=utcnow, onupdate=utcnow),
    sa.CheckConstraint("status IN ('active', 'suspended')", name="status"),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tenant", sa.ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(40), nullable=False),
    # Milliseconds of the last change; tokens carry it and older ones stop working.
    sa.Column("revision", sa.BigInteger(), nullable=False),
    _created(),
    sa.Index("ix_memberships_tenant", "tenant"),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(60), primary_key=True),
    sa.Column("tenant", sa.ForeignKey("tenants.slug", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.String(1000), nullable=True),
    sa.Column("secret_hash", sa.String(255), nullable=False),
    sa.Column("scopes", sa.String(1000), nullable=False),
    sa.Column("rate_limit", sa.String(100), nullable=True),
    sa.Column("revision", sa.BigInteger(), nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    _created(),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Index("ix_clients_tenant", "tenant"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("family_id", sa.String(40), nullable=False, index=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant", sa.ForeignKey("tenants.slug", ondelete="CASCADE"), nullable=True),
    sa.Column("client_id", sa.String(60), nullable=False),
    sa.Column("scope", sa.String(1000), nullable=False),
    _created(),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("algorithm", sa.String(10), nullable=False),
    sa.Column("private_pem", sa.Text(), nullable=False),
    sa.Column("public_jwk", sa.JSON(), nullable=False),
    # active (signs), previous (still verifies), retired (rejected, out of JWKS)
    sa.Column("status", sa.String(10), nullable=False),
    _created(),
    sa.Column("retired_at", UtcDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'previous', 'retired')", name="status"),
)

# Durable copy of the guard-path state held in Redis, so it can be re-seeded after Redis loses it.
revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("tag", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("key", sa.String(120), nullable=False),
    sa.Column("value", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    _created(),
    sa.UniqueConstraint("tag", "kind", "key", name="uq_revocations_tag_kind_key"),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.ForeignKey("tenants.slug", ondelete="CASCADE"), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.String(2000), nullable=False, default=""),
    sa.Column("category", sa.String(100), nullable=False),
    # Price in ten-thousandths: exact integer arithmetic on every backend.
    sa.Column("price_units", sa.BigInteger(), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, default=1),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    sa.UniqueConstraint("tenant", "sku", name="uq_items_tenant_sku"),
    sa.Index("ix_items_tenant_id", "tenant", "id"),
    sa.Index("ix_items_tenant_category_id", "tenant", "category", "id"),
    sa.Index("ix_items_tenant_name", "tenant", "name"),
    sa.CheckConstraint("price_units >= 0", name="price_units"),
    sa.CheckConstraint("quantity >= 0", name="quantity"),
)

# Append-only audit trail: one hash chain per tenant (`chain` = tenant slug, or "_platform").
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("chain", sa.String(40), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("tenant", sa.String(40), nullable=True),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_subject", sa.String(80), nullable=True),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("scopes", sa.String(1000), nullable=False),
    sa.Column("client_ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(400), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("details", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("chain", "seq", name="uq_audit_events_chain_seq"),
    sa.Index("ix_audit_events_chain_action_seq", "chain", "action", "seq"),
    sa.Index("ix_audit_events_chain_occurred_at", "chain", "occurred_at"),
)

# The head of each chain: locked (SELECT ... FOR UPDATE) by every append, so concurrent writers
# in several workers take turns, and compared with the last event so a deleted tail is noticed.
audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("chain", sa.String(40), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
