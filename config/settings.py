"""Settings read once from the environment (prefix TENANTGATE_) and passed down explicitly."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from limits import parse as parse_limit
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/tenantgate.db"
DEFAULT_ISSUER = "http://127.0.0.1:8000"
# Host names a development server answers to (`tenantgate.test` is the test suite's host).
DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "::1", "tenantgate.test", "testserver")
# Development only: production refuses to start without a secret of its own.
DEVELOPMENT_SYSTEM_SECRET = "tenantgate-development-system-secret"  # noqa: S105
MIN_SYSTEM_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SigningAlgorithm(StrEnum):
    RS256 = "RS256"
    ES256 = "ES256"
    EDDSA = "EdDSA"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of the service; the README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="TENANTGATE_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=20, ge=1)
    # Seconds to open a connection, per PostgreSQL statement, to wait for a pooled connection
    # and for SQLite's write lock: past them a request is a 503, not a hang.
    database_connect_timeout: float = Field(default=2.0, gt=0)
    database_timeout: float = Field(default=2.0, gt=0)
    database_pool_timeout: float = Field(default=10.0, gt=0)
    database_busy_timeout: float = Field(default=10.0, gt=0)
    # Named prepared statements kept per connection (asyncpg's statement cache); off behind a
    # pooler in transaction mode (PgBouncer before 1.21), where a connection changes per
    # transaction and a named statement may not exist on the next one.
    database_prepared_statements: bool = True
    redis_url: str | None = None
    # A Redis Cluster (the URL names any node of it): keys go to their slot's master.
    redis_cluster: bool = False
    redis_prefix: str = "tg"
    redis_timeout: float = Field(default=1.0, gt=0)
    # Rate limits: seconds between probes of a failed Redis; plan limits overriding or adding to
    # policies/plans.py as JSON ({"free": {"principal": "60/minute", "tenant": "300/minute"}});
    # /token limits per client IP and per username; worker count (`serve --workers` sets it).
    redis_breaker_cooldown: float = Field(default=2.0, gt=0)
    # The breaker opens on a sustained failure: this many failed Redis calls, half of all calls
    # or more, within this many seconds. While Redis fails each process admits limit / this
    # many processes (unset: the worker count; set it to pods x workers behind one Redis).
    redis_breaker_failures: int = Field(default=5, ge=1)
    redis_breaker_window: float = Field(default=10.0, gt=0)
    redis_fallback_processes: int | None = Field(default=None, ge=1)
    plan_limits: dict[str, dict[str, str]] = Field(default_factory=dict)
    login_rate_limit_ip: str = "30/minute"
    login_rate_limit_username: str = "10/minute"
    login_rate_limit_client: str = "10/minute"
    password_change_rate_limit: str = "5/minute"  # noqa: S105 - a rate, not a password
    # Keys HMACs of identifiers the service keeps outside the database (the sign-in limiter's
    # username keys): the same in every worker, never sent anywhere.
    system_secret: SecretStr | None = None
    # uvicorn and gunicorn read WEB_CONCURRENCY when --workers is not given.
    workers: int = Field(
        default=1, ge=1, validation_alias=AliasChoices("TENANTGATE_WORKERS", "WEB_CONCURRENCY")
    )
    issuer: str = DEFAULT_ISSUER
    audience: str = "tenantgate"
    access_token_ttl: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl: int = Field(default=14 * 86_400, ge=60)
    signing_algorithm: SigningAlgorithm = SigningAlgorithm.RS256
    key_refresh_interval: float = Field(default=30.0, gt=0)
    password_hash_concurrency: int = Field(default=4, ge=1)
    password_max_length: int = Field(default=1024, ge=16)
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost: int = Field(default=65_536, ge=1024)
    token_cache_size: int = Field(default=10_000, ge=0)
    trusted_proxies: CsvList = Field(default_factory=list)
    cors_origins: CsvList = Field(default_factory=list)
    log_level: str = "INFO"
    # Operations: hosts, CORS, input limits, logs and metrics (docs/operations.md).
    allowed_hosts: CsvList = Field(default_factory=lambda: list(DEVELOPMENT_HOSTS))
    cors_allow_credentials: bool = False
    body_limit_bytes: int = Field(default=1_048_576, ge=1024)
    header_limit_bytes: int = Field(default=16_384, ge=1024)
    request_timeout: float = Field(default=30.0, gt=0)
    ready_timeout: float = Field(default=2.0, gt=0)
    access_log: bool = True
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    # Seconds a cached report may live (0: no cache); every item write invalidates it anyway.
    report_cache_ttl: float = Field(default=60.0, ge=0)
    # Events an audit stream may have waiting before it is closed as too slow (1013).
    audit_stream_buffer: int = Field(default=1000, ge=1)

    @field_validator(
        "login_rate_limit_ip",
        "login_rate_limit_username",
        "login_rate_limit_client",
        "password_change_rate_limit",
    )
    @classmethod
    def _limit_string(cls, value: str) -> str:
        parse_limit(value)  # "100/minute" syntax; raises ValueError on anything else
        return value

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _csv_hosts(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Settings:
        # Browsers refuse `*` with credentials; reflecting any origin instead would be worse.
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("TENANTGATE_CORS_ORIGINS='*' cannot be used with credentials")
        return self

    @property
    def system_key(self) -> bytes:
        """The HMAC key: TENANTGATE_SYSTEM_SECRET, or the development value."""
        secret = self.system_secret.get_secret_value() if self.system_secret else None
        return (secret or DEVELOPMENT_SYSTEM_SECRET).encode()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def production_problems(self) -> list[str]:
        """One line per development default that production must not run on."""
        problems: list[str] = []
        if self.is_sqlite:
            problems.append("TENANTGATE_DATABASE_URL points at SQLite; production needs PostgreSQL")
        if self.issuer == DEFAULT_ISSUER:
            problems.append("TENANTGATE_ISSUER is not set; production needs its public https URL")
        if "*" in self.cors_origins:
            problems.append("TENANTGATE_CORS_ORIGINS contains '*'; list the allowed origins")
        problems.extend(self._operations_problems())
        return problems

    def _operations_problems(self) -> list[str]:
        problems: list[str] = []
        if self.issuer != DEFAULT_ISSUER and not self.issuer.startswith("https://"):
            problems.append("TENANTGATE_ISSUER is not an https URL; production tokens need one")
        if self.redis_url is None:
            problems.append(
                "TENANTGATE_REDIS_URL is not set; production needs Redis so every worker "
                "shares revocations and rate limits"
            )
        if "*" in self.allowed_hosts or set(self.allowed_hosts) <= set(DEVELOPMENT_HOSTS):
            problems.append(
                "TENANTGATE_ALLOWED_HOSTS is the development default or '*'; list the public "
                "host names"
            )
        secret = self.system_secret.get_secret_value() if self.system_secret else ""
        if len(secret) < MIN_SYSTEM_SECRET_LENGTH:
            problems.append(
                "TENANTGATE_SYSTEM_SECRET is not set or shorter than 32 characters; production "
                "needs a random secret shared by every worker (openssl rand -hex 32)"
            )
        if self.log_level.upper() == "DEBUG":
            problems.append("TENANTGATE_LOG_LEVEL is DEBUG; production logs at INFO or above")
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
