"""Driving the console as a person does: labelled fields, buttons by their names."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.site import Tenant


def sign_in(page: Page, email: str, password: str, tenant: str | None = None) -> None:
    page.goto("/console")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    if tenant:
        page.get_by_label("Tenant (only if you belong to several)").fill(tenant)
    page.get_by_role("button", name="Sign in").click()


def sign_in_as(page: Page, tenant: Tenant, role: str) -> None:
    email = tenant.email(role)
    sign_in(page, email, tenant.passwords[email])
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Sign in")


def rows(page: Page, table: str) -> list[list[str]]:
    """The text of each cell of each row of a table's body, white space collapsed."""
    found: list[list[str]] = []
    for row in page.locator(f"#{table} tbody tr").all():
        found.append([" ".join(cell.split()) for cell in row.locator("th, td").all_inner_texts()])
    return found
