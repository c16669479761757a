"""Pages of App Runner listings and their ``NextToken``s.

A token is opaque to clients and tamper-evident: it carries where the next page starts
and which listing it belongs to, signed with an HMAC under a key the agent holds (derived
from the vault key, so tokens outlive a restart and mean nothing to another host). A
token that was forged, altered or handed out by another listing is refused with
``InvalidRequestException`` instead of being read as some other offset.

Without ``MaxResults`` a listing answers everything in one page, as the model documents
for every App Runner ``List*`` call ("If you don't specify MaxResults, the request
retrieves all available results in a single response").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest

MAC_BYTES = 16  # 128 bits of HMAC-SHA256: forging one is as hard as guessing the key


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_token: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pager:
    """Cuts listings into pages; ``key`` signs the tokens it hands out."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a token key needs at least 16 bytes")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def token(self, listing: str, offset: int) -> str:
        payload = json.dumps({"l": listing, "o": offset}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def offset(self, listing: str, token: str) -> int:
        """Where the page a token names starts; refused unless this agent signed it for
        this listing."""
        bad = InvalidRequest("NextToken is not valid: pass back a NextToken this listing returned")
        payload_text, _, mac_text = token.partition(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (binascii.Error, ValueError) as exc:
            raise bad from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise bad
        data = json.loads(payload)  # signed by us, so well formed
        if data["l"] != listing:
            raise bad
        return int(data["o"])

    def page(
        self, items: Sequence[Any], max_results: int | None, token: str | None, *, listing: str
    ) -> Page:
        """One page of ``items``; ``listing`` names the listing and its filters (a token
        from ListOperations of one service is no token for another's)."""
        start = self.offset(listing, token) if token else 0
        end = len(items) if max_results is None else start + max_results
        nxt = self.token(listing, end) if end < len(items) else None
        return Page(list(items[start:end]), nxt)
