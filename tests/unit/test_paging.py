"""Pages of listings: everything without MaxResults, as the model documents, and
NextTokens that are signed for one listing by one key."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from slipway.errors import InvalidRequest
from slipway.paging import Pager
from slipway.vault import Vault

KEY = b"k" * 32
ITEMS = list(range(7))


def test_without_max_results_everything_in_one_page() -> None:
    page = Pager(KEY).page(ITEMS, None, None, listing="ListServices")
    assert page.items == ITEMS and page.next_token is None


def test_pages_follow_each_other_to_the_end() -> None:
    pager = Pager(KEY)
    seen, token, pages = [], None, 0
    while True:
        page = pager.page(ITEMS, 3, token, listing="ListServices")
        seen += page.items
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert seen == ITEMS and pages == 3


def _altered(token: str) -> str:
    payload, _, mac = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["o"] = 0
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{forged}.{mac}"


@pytest.mark.parametrize(
    "make_token",
    [
        lambda good: "x",  # not a token at all
        lambda good: base64.urlsafe_b64encode(b"3").decode(),  # an offset, unsigned
        lambda good: good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # bad MAC
        _altered,  # payload changed, MAC kept
        lambda good: Pager(b"o" * 32).token("ListServices", 3),  # another key's
        lambda good: Pager(KEY).token("ListOperations svc-1", 3),  # another listing's
    ],
)
def test_forged_or_foreign_tokens_are_invalid_requests(make_token) -> None:
    pager = Pager(KEY)
    good = pager.page(ITEMS, 3, None, listing="ListServices").next_token
    assert good is not None
    with pytest.raises(InvalidRequest, match="NextToken"):
        pager.page(ITEMS, 3, make_token(good), listing="ListServices")


def test_tokens_outlive_a_restart_with_the_same_vault_key(tmp_path: Path) -> None:
    first = Pager(Vault(tmp_path / "vault.key").derive("next-token"))
    token = first.page(ITEMS, 2, None, listing="ListServices").next_token
    again = Pager(Vault(tmp_path / "vault.key").derive("next-token"))
    assert again.page(ITEMS, 2, token, listing="ListServices").items == [2, 3]
    other = Pager(Vault(tmp_path / "other.key").derive("next-token"))
    with pytest.raises(InvalidRequest):
        other.page(ITEMS, 2, token, listing="ListServices")
