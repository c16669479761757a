"""One shape for every List answer: a page of the items through the services' pager
(signed tokens, the model's default page), and NextToken only when there is more."""

from __future__ import annotations

from typing import Any, Protocol

from ..paging import Page
from ..services import Services


class HasServices(Protocol):
    services: Services


def page(rules: HasServices, items: list[Any], p: dict[str, Any], listing: str) -> Page:
    """``listing`` names the call and its filters: a token only pages the listing it
    was given for."""
    return rules.services.pager.page(
        items, p.get("MaxResults"), p.get("NextToken"), listing=listing
    )


def listed(member: str, items: list[Any], page: Page) -> dict[str, Any]:
    """A List answer: the page's items under ``member``, and its NextToken if any."""
    out: dict[str, Any] = {member: items}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out
