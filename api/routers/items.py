"""Items: list, create, read, update and delete a tenant's items (ETag / If-Match on writes)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Header, Path, Query, Request, Response, Security, status

from api.cached_reports import invalidate_reports
from api.conditional import (
    CONDITIONAL_READ,
    NOT_MODIFIED_RESPONSE,
    if_none_match,
    unless_current,
    weak_etag,
)
from api.deps import database_of
from api.responses import json_body
from api.routers.tenants import tenant_router
from api.schemas.common import Problem
from api.schemas.items import (
    ONE_LINE,
    Cursor,
    ItemCreate,
    ItemOut,
    ItemPage,
    ItemPatch,
)
from api.schemas.pages import encode_cursor
from policies.authorize import require_scopes
from policies.tenancy import tenant_of
from storage import items as store
from storage.driver import Driver
from storage.items import NewItem, price_to_units

router = tenant_router("/items", tags=["items"], read_scopes=["items:read"])
WRITE = [Security(require_scopes, scopes=["items:write"])]
# Versions live in an INTEGER column; a larger If-Match value can name no version.
MAX_VERSION = 2**31 - 1
ENTITY_TAG = re.compile(r'"([0-9]{1,10})"')

ItemId = Annotated[str, Path(max_length=40, description="Opaque item id")]
IfMatch = Annotated[
    str | None,
    Header(
        max_length=1000,
        description='Only act if the item\'s ETag is one of these (e.g. "3"), else 412',
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such item in this tenant"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The SKU is already used in this tenant"}
}
STALE: dict[int | str, dict[str, Any]] = {
    412: {"model": Problem, "description": "If-Match does not name the current version"}
}


def _scope(request: Request) -> tuple[str, Driver]:
    """The tenant the guard checked and the data path's driver, read from the request rather
    than declared as dependencies: each dependency node cost about 10 us per request."""
    return tenant_of(request).slug, database_of(request).driver


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_versions(header: str | None) -> frozenset[int] | None:
    """RFC 9110 If-Match: None = no condition ('*' too: the item must exist anyway).

    Strong comparison, so weak tags (W/"1") and anything not ours match nothing.
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        match = ENTITY_TAG.fullmatch(tag.strip())
        if match and int(match[1]) <= MAX_VERSION:
            versions.add(int(match[1]))
    return frozenset(versions)


@router.get(
    "",
    name="items:list",
    summary="List items, oldest first, one page at a time",
    response_model=ItemPage,
    responses=NOT_MODIFIED_RESPONSE,
    openapi_extra=CONDITIONAL_READ,
)
async def list_items(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
    category: Annotated[str | None, Query(min_length=1, max_length=100, pattern=ONE_LINE)] = None,
    name_prefix: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=ONE_LINE, description="Case-sensitive"),
    ] = None,
) -> Response:
    tenant, driver = _scope(request)
    page = await store.list_items(
        driver,
        tenant,
        limit=limit,
        after=cursor,
        category=category,
        name_prefix=name_prefix,
    )
    next_page = encode_cursor(page.next_after) if page.next_after else None
    # Ids and versions name the page's content exactly (every change bumps a version).
    versions = ",".join(f"{item.id}:{item.version}" for item in page.items) + f";{next_page}"
    tag = weak_etag(versions.encode())
    unless_current(if_none_match(request), tag)
    return json_body(ItemPage.of(page.items, next_page), headers={"ETag": tag})


@router.post(
    "",
    name="items:create",
    status_code=status.HTTP_201_CREATED,
    dependencies=WRITE,
    responses=CONFLICT,
    summary="Create an item",
)
async def create_item(
    body: ItemCreate,
    request: Request,
    response: Response,
) -> ItemOut:
    new = NewItem(
        sku=body.sku,
        name=body.name,
        description=body.description,
        category=body.category,
        price_units=price_to_units(body.price),
        quantity=body.quantity,
        tags=body.tags,
    )
    tenant, driver = _scope(request)
    item = await store.create_item(driver, tenant, new)
    await invalidate_reports(request, tenant)
    response.headers["Location"] = str(
        request.app.url_path_for("items:get", tenant=tenant, item_id=item.id)
    )
    response.headers["ETag"] = etag(item.version)
    return ItemOut.of(item)


@router.get(
    "/{item_id}",
    name="items:get",
    response_model=ItemOut,
    responses=NOT_FOUND | NOT_MODIFIED_RESPONSE,
    openapi_extra=CONDITIONAL_READ,
    summary="Read an item",
)
async def get_item(item_id: ItemId, request: Request) -> Response:
    tenant, driver = _scope(request)
    item = await store.get_item(driver, tenant, item_id)
    tag = etag(item.version)
    unless_current(if_none_match(request), tag)
    return json_body(ItemOut.of(item), headers={"ETag": tag})


@router.patch(
    "/{item_id}",
    name="items:update",
    dependencies=WRITE,
    responses=NOT_FOUND | CONFLICT | STALE,
    summary="Change some fields of an item (bumps its version)",
)
async def update_item(
    item_id: ItemId,
    body: ItemPatch,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> ItemOut:
    tenant, driver = _scope(request)
    item = await store.update_item(
        driver,
        tenant,
        item_id,
        body.changes(),
        versions=if_match_versions(if_match),
    )
    await invalidate_reports(request, tenant)
    response.headers["ETag"] = etag(item.version)
    return ItemOut.of(item)


@router.delete(
    "/{item_id}",
    name="items:delete",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=WRITE,
    responses=NOT_FOUND | STALE,
    summary="Delete an item",
)
async def delete_item(
    item_id: ItemId,
    request: Request,
    if_match: IfMatch = None,
) -> Response:
    tenant, driver = _scope(request)
    await store.delete_item(driver, tenant, item_id, versions=if_match_versions(if_match))
    await invalidate_reports(request, tenant)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
