"""Item bodies and pages. Prices travel as decimal strings; pagination cursors are opaque."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self

from fastapi import Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.schemas.common import InputModel
from api.schemas.pages import CURSOR_DESCRIPTION, keyed_cursor
from storage.items import ITEM_ID, Item, price_to_units, units_to_price

MAX_PRICE = Decimal(1_000_000_000)
MAX_QUANTITY = 1_000_000_000
PLAIN_DECIMAL = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,12})?$")
# No control characters (PostgreSQL refuses NUL outright); descriptions may hold line breaks.
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _price(value: Any) -> Decimal:
    """Accept "12.5" or 12.5; refuse what is not an exact non-negative price of sane size."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError('a price is a decimal string such as "12.50"')
    if isinstance(value, str) and not PLAIN_DECIMAL.match(value.strip()):
        raise ValueError('a price is a plain decimal string such as "12.50"')
    try:
        # repr() is the shortest round-tripping string of a float: 0.1 -> "0.1", not 0.1000...0055
        price = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not price.is_finite():
        raise ValueError("a price must be finite")
    if price < 0:
        raise ValueError("a price cannot be negative")
    if price >= MAX_PRICE:
        raise ValueError(f"a price must be below {MAX_PRICE}")
    price_to_units(price)  # more than four decimals -> ValueError
    return price


Price = Annotated[
    Decimal,
    BeforeValidator(_price),
    Field(
        description="Decimal string, at most 4 decimal places, 0 <= price < 1e9 (a JSON number "
        "is accepted too). Returned with exactly 4 decimal places.",
        examples=["12.50"],
    ),
]
Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY, strict=True)]
Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$"),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=ONE_LINE)]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=MULTI_LINE)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=ONE_LINE)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=ONE_LINE)]
Tags = Annotated[list[Tag], Field(max_length=20)]


class ItemCreate(InputModel):
    sku: Sku
    name: Name
    description: Description = ""
    category: Category
    price: Price
    quantity: Quantity
    tags: Tags = Field(default_factory=list)


class ItemPatch(InputModel):
    """Partial update: only the fields sent change; null is not a value for any of them."""

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price: Price | None = None
    quantity: Quantity | None = None
    tags: Tags | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("null is not allowed; leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The storage columns to set."""
        changes = self.model_dump(exclude_unset=True, exclude={"price"})
        if "price" in self.model_fields_set and self.price is not None:
            changes["price_units"] = price_to_units(self.price)
        return changes


class ItemOut(BaseModel):
    id: str
    sku: str
    name: str
    description: str
    category: str
    price: str = Field(description="Decimal string with exactly 4 decimal places")
    quantity: int
    tags: list[str]
    version: int = Field(description="Also the ETag; send it in If-Match to update safely")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls.model_validate(_fields(item))


def _fields(item: Item) -> dict[str, Any]:
    """The response fields of an item (validating a dict is pydantic's fastest way in)."""
    return {
        "id": item.id,
        "sku": item.sku,
        "name": item.name,
        "description": item.description,
        "category": item.category,
        "price": units_to_price(item.price_units),
        "quantity": item.quantity,
        "tags": item.tags,
        "version": item.version,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )

    @classmethod
    def of(cls, items: list[Item], next_cursor: str | None) -> ItemPage:
        # One validation of the whole page: a model per item would cost twice as much.
        return cls.model_validate(
            {"items": [_fields(item) for item in items], "next_cursor": next_cursor}
        )


# Continues after this item id: any other key is a malformed cursor (422).
Cursor = Annotated[
    str | None, Query(max_length=200, description=CURSOR_DESCRIPTION), keyed_cursor(ITEM_ID)
]
