"""The pattern the guarded read is measured against: decode an HS256 JWT, load the user with the
ORM, then query the item. One session per request, default pool: what tutorials and templates
do. Served by uvicorn like the real app: `uvicorn bench.baseline:create --factory`.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local aliases below.
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped

from storage.tables import items, users

SECRET_ENV = "BENCH_HS256_SECRET"  # noqa: S105 - the name of the variable, not a secret


class Base(DeclarativeBase):
    pass


class User(Base):
    __table__ = users
    id: Mapped[str]
    is_active: Mapped[bool]


class Item(Base):
    __table__ = items
    id: Mapped[str]
    tenant: Mapped[str]


class ItemOut(BaseModel):
    id: str
    sku: str
    name: str
    description: str
    category: str
    price_units: int
    quantity: int
    tags: list[str]
    version: int


def create() -> FastAPI:
    engine = create_async_engine(os.environ["TENANTGATE_DATABASE_URL"])
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    secret = os.environ[SECRET_ENV]
    bearer = HTTPBearer()
    app = FastAPI()

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as opened:
            yield opened

    Session = Annotated[AsyncSession, Depends(session)]

    async def current_user(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)], db: Session
    ) -> Any:
        try:
            payload = jwt.decode(credentials.credentials, secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise HTTPException(401, "invalid token") from None
        user = await db.get(User, payload["sub"])
        if user is None or not user.is_active:
            raise HTTPException(401, "invalid token")
        return user

    @app.get("/v1/tenants/{tenant}/items/{item_id}")
    async def read_item(
        tenant: str, item_id: str, user: Annotated[Any, Depends(current_user)], db: Session
    ) -> ItemOut:
        query = select(Item).where(Item.id == item_id, Item.tenant == tenant)
        item = (await db.execute(query)).scalar_one_or_none()
        if item is None:
            raise HTTPException(404, "not found")
        return ItemOut.model_validate(item, from_attributes=True)

    return app
