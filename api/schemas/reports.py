"""Report bodies: counts as integers, money as exact decimal strings."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from storage.items import CategoryStock, units_to_price

VALUE = "price x quantity summed exactly, as a decimal string with 4 decimal places"


class CategoryStockOut(BaseModel):
    category: str
    item_count: int
    total_quantity: int
    stock_value: str = Field(description=VALUE)

    @classmethod
    def of(cls, stock: CategoryStock) -> CategoryStockOut:
        return cls(
            category=stock.category,
            item_count=stock.item_count,
            total_quantity=stock.total_quantity,
            stock_value=units_to_price(stock.value_units),
        )


class StockTotalsOut(BaseModel):
    item_count: int
    total_quantity: int
    stock_value: str = Field(description=VALUE)


class InventoryReport(BaseModel):
    generated_at: datetime
    categories: list[CategoryStockOut] = Field(description="One entry per category, by name")
    totals: StockTotalsOut

    @classmethod
    def of(cls, generated_at: datetime, stocks: list[CategoryStock]) -> InventoryReport:
        # The totals add up the database's per-category integers, so they always agree with them.
        totals = StockTotalsOut(
            item_count=sum(s.item_count for s in stocks),
            total_quantity=sum(s.total_quantity for s in stocks),
            stock_value=units_to_price(sum(s.value_units for s in stocks)),
        )
        return cls(
            generated_at=generated_at,
            categories=[CategoryStockOut.of(s) for s in stocks],
            totals=totals,
        )
