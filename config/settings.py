"""Settings read once from the environment (prefix TENANTGATE_) and passed down explicitly."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from limits import parse as parse_limit
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/tenantgate.db"
DEFAULT_ISSUER = "http://127.0.0.1:8000"


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
        env_prefix="TENANTGATE_", env_file=".env", extra="ignore", frozen=True
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=20, ge=1)
    redis_url: str | None = None
    redis_prefix: str = "tg"
    redis_timeout: float = Field(default=0.25, gt=0)
    # Rate limits: seconds between probes of a failed Redis; plan limits overriding or adding to
    # policies/plans.py as JSON ({"free": {"principal": "60/minute", "tenant": "300/minute"}});
    # /token limits per client IP and per username; worker count (`serve --workers` sets it).
    redis_breaker_cooldown: float = Field(default=2.0, gt=0)
    plan_limits: dict[str, dict[str, str]] = Field(default_factory=dict)
    login_rate_limit_ip: str = "30/minute"
    login_rate_limit_username: str = "10/minute"
    workers: int = Field(default=1, ge=1)
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

    @field_validator("login_rate_limit_ip", "login_rate_limit_username")
    @classmethod
    def _limit_string(cls, value: str) -> str:
        parse_limit(value)  # "100/minute" syntax; raises ValueError on anything else
        return value

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

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
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
