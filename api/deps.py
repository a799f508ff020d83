"""Typed dependency aliases for what the running app holds (see api/runtime.py).

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
thread hop (hundreds of microseconds here) per dependency per request.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from auth.keys import KeyRing
from auth.passwords import Passwords
from config.settings import Settings
from storage.database import Database
from storage.guard_state import GuardStore


def database_of(connection: HTTPConnection) -> Database:
    """The app's database, read without a dependency node (for the hottest handlers)."""
    return cast(Database, connection.app.state.database)


async def get_database(request: Request) -> Database:
    return database_of(request)


async def get_settings_dep(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_guard(request: Request) -> GuardStore:
    return cast(GuardStore, request.app.state.guard)


async def get_passwords(request: Request) -> Passwords:
    return cast(Passwords, request.app.state.passwords)


async def get_keyring(request: Request) -> KeyRing:
    return cast(KeyRing, request.app.state.keyring)


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
GuardDep = Annotated[GuardStore, Depends(get_guard)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
