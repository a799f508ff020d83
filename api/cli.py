"""The `tenantgate` command: database, serving, bootstrap and administration."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
from typing import Annotated, Any

import typer

from api.cli_database import run_with_database
from api.serving import ServeOptions, refusals
from api.serving import serve as run_server
from auth.keys import (
    active_key_created_at,
    announce_rotation,
    has_active_key,
    lock_key_table,
    rotate,
    rotation_delay,
)
from auth.passwords import Passwords, PasswordTooLong
from config.settings import Environment, Settings, get_settings
from policies.plans import PLANS
from policies.roles import ROLES
from policies.tenancy import SLUG_PATTERN
from storage import accounts
from storage.database import Database
from storage.errors import NotFound
from storage.migrate import upgrade
from storage.redis_client import mode_problem

app = typer.Typer(help="tenantgate: authenticated multi-tenant API platform", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants", no_args_is_help=True)
users_app = typer.Typer(help="Users", no_args_is_help=True)
members_app = typer.Typer(help="Tenant memberships", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (tenants_app, "tenants"),
    (users_app, "users"),
    (members_app, "members"),
    (keys_app, "keys"),
):
    app.add_typer(sub, name=name)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON")]


def _settings() -> Settings:
    return get_settings()


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _output(result: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(result) if as_json else text)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    upgrade(_settings())
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Serve the API with uvicorn: N worker processes, JSON logs, graceful shutdown on SIGTERM."""
    settings = _settings()
    production = settings.env is Environment.PRODUCTION
    problems = refusals(settings, has_signing_key=not production or _has_signing_key())
    redis_mode = asyncio.run(mode_problem(settings))
    if redis_mode is not None:
        problems.append(redis_mode)
    for problem in problems:
        typer.echo(f"refused: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    run_server(settings, ServeOptions(host, port, workers))


def _has_signing_key() -> bool:
    async def work(database: Database) -> bool:
        async with database.read() as connection:
            return await has_active_key(connection)

    return run_with_database(work)


@app.command()
def bootstrap(as_json: JsonFlag = False) -> None:
    """Create a platform admin with a random one-time password, unless one exists."""
    settings = _settings()
    password = secrets.token_urlsafe(18)
    email = "admin@tenantgate.local"

    async def work(database: Database) -> bool:
        passwords = Passwords(settings)
        try:
            async with database.write() as connection:
                if await accounts.has_platform_admin(connection):
                    return False
                password_hash = await passwords.hash(password)
                user_id = await accounts.create_user(
                    connection,
                    email,
                    password_hash,
                    platform_admin=True,
                    must_change_password=True,
                )
                await record_cli(
                    connection, "platform_admin.created", None, f"user:{user_id}", email=email
                )
                return True
        finally:
            passwords.close()

    if run_with_database(work):
        _output(
            {"email": email, "password": password},
            as_json,
            f"platform admin created: {email}\none-time password (shown once): {password}",
        )
    else:
        _output({"email": None}, as_json, "a platform admin exists; nothing to do")


@tenants_app.command("create")
def tenants_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug)")] = None,
    plan: Annotated[
        str, typer.Option(help=f"One of: {', '.join(PLANS)}, or one of TENANTGATE_PLAN_LIMITS")
    ] = "free",
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant."""
    if not re.fullmatch(SLUG_PATTERN, slug):
        _fail("SLUG must be 3-40 characters of a-z, 0-9 and '-'", 2)
    plans = [*PLANS, *(name for name in _settings().plan_limits if name not in PLANS)]
    if plan not in plans:
        _fail(f"--plan must be one of: {', '.join(plans)}", 2)

    async def work(database: Database) -> None:
        async with database.write() as connection:
            await accounts.create_tenant(connection, slug, name or slug, plan)
            await record_cli(connection, "tenant.created", slug, f"tenant:{slug}", plan=plan)

    run_with_database(work)
    _output({"slug": slug, "name": name or slug, "plan": plan}, as_json, f"tenant {slug} created")


@users_app.command("create")
def users_create(
    email: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    platform_admin: Annotated[bool, typer.Option(help="Grant platform:admin")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a user; without --password-stdin a random one-time password is printed."""
    if "@" not in email or len(email) > 320:
        _fail("EMAIL is not an email address", 2)
    settings = _settings()
    generated = not password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
    if not password:
        _fail("empty password on stdin", 2)

    async def work(database: Database) -> str:
        passwords = Passwords(settings)
        try:
            password_hash = await passwords.hash(password)
        except PasswordTooLong as error:
            _fail(str(error), 2)
        finally:
            passwords.close()
        async with database.write() as connection:
            return await accounts.create_user(
                connection,
                email,
                password_hash,
                platform_admin=platform_admin,
                must_change_password=generated,
            )

    user_id = run_with_database(work)
    result: dict[str, Any] = {"id": user_id, "email": accounts.normalise_email(email)}
    text = f"user {result['email']} created ({user_id})"
    if generated:
        result["password"] = password
        text += f"\none-time password (shown once): {password}"
    _output(result, as_json, text)


@members_app.command("add")
def members_add(
    tenant: str,
    email: str,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    as_json: JsonFlag = False,
) -> None:
    """Make an existing user a member of a tenant."""
    if role not in ROLES:
        _fail(f"--role must be one of: {', '.join(ROLES)}", 2)

    async def work(database: Database) -> str:
        async with database.write() as connection:
            user_id = await accounts.user_id_by_email(connection, email)
            if user_id is None:
                raise NotFound("user")
            await accounts.add_member(connection, tenant, user_id, role)
            await record_cli(connection, "member.added", tenant, f"user:{user_id}", role=role)
            return user_id

    user_id = run_with_database(work)
    _output(
        {"tenant": tenant, "user_id": user_id, "role": role},
        as_json,
        f"{email} is now {role} of {tenant}",
    )


@keys_app.command("rotate")
def keys_rotate(
    as_json: JsonFlag = False,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Only when no key is active (first deployment)")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Rotate even if the previous key's tokens may still be valid (a leaked key): "
            "they, and tokens a worker signs before it re-reads the keys, are refused",
        ),
    ] = False,
) -> None:
    """Activate a new signing key; the previous one verifies until its tokens expire.

    Refused while the active key is younger than KEY_REFRESH_INTERVAL + ACCESS_TOKEN_TTL: the
    rotation retires the previous key, which some worker may still sign with, or whose tokens
    may still be valid, until then.
    """
    settings = _settings()

    async def work(database: Database) -> str | float | None:
        async with database.write() as connection:
            await lock_key_table(connection)  # the checks below hold until the rotation
            if if_missing and await has_active_key(connection):
                return None
            wait = rotation_delay(
                await active_key_created_at(connection),
                refresh_interval=settings.key_refresh_interval,
                token_ttl=settings.access_token_ttl,
            )
            if wait > 0 and not force:
                return wait
            kid = await rotate(connection, settings.signing_algorithm)
            await record_cli(
                connection,
                "signing_key.rotated",
                None,
                f"signing_key:{kid}",
                algorithm=settings.signing_algorithm.value,
                forced=str(force and wait > 0).lower(),
            )
            return kid

    kid = run_with_database(work)
    if kid is None:
        _output({"kid": None}, as_json, "a signing key is active; nothing to do")
        return
    if isinstance(kid, float):
        _fail(
            f"the active key is too young to retire the previous one: retry in {kid:.0f} s "
            "(workers may still sign with it, or its tokens may still be valid); --force "
            "rotates anyway"
        )
    announced = asyncio.run(announce_rotation(settings, str(kid)))
    reach = (
        "every worker re-reads the keys now"
        if announced
        else f"workers pick it up within {settings.key_refresh_interval:g} s"
    )
    _output({"kid": kid, "announced": announced}, as_json, f"active signing key: {kid} ({reach})")


clients_app = typer.Typer(help="OAuth2 clients of a tenant (integrators)", no_args_is_help=True)
app.add_typer(clients_app, name="clients")


@clients_app.command("create")
def clients_create(
    tenant: str,
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", help="A scope it may request; repeat")],
    as_json: JsonFlag = False,
) -> None:
    """Create a client for the client_credentials grant; its secret is printed once."""
    from auth.clients import create_client
    from policies.client_rules import require_room
    from policies.scopes import TENANT_SCOPES

    unknown = sorted(set(scope) - TENANT_SCOPES)
    if unknown:
        _fail(f"unknown scope(s): {' '.join(unknown)}; known: {' '.join(sorted(TENANT_SCOPES))}", 2)

    async def work(database: Database) -> tuple[str, str]:
        async with database.write() as connection:
            await require_room(connection, tenant)
            record, secret = await create_client(
                connection,
                tenant=tenant,
                name=name,
                description=None,
                scopes=frozenset(scope),
                created_by="cli",
            )
            target = f"client:{record.client_id}"
            await record_cli(connection, "client.created", tenant, target, name=name)
            return record.client_id, secret

    client_id, secret = run_with_database(work)
    result = {
        "tenant": tenant,
        "name": name,
        "client_id": client_id,
        "client_secret": secret,
        "scopes": sorted(set(scope)),
    }
    _output(
        result,
        as_json,
        f"client {client_id} created for {tenant}\nclient secret (shown once): {secret}",
    )


from api.cli_access import access_app  # noqa: E402 - with the others
from api.cli_audit import audit_app, record_cli, scopes_app  # noqa: E402 - with the others

app.add_typer(scopes_app, name="scopes")
app.add_typer(audit_app, name="audit")
app.add_typer(access_app, name="access")


def main() -> None:
    app()
