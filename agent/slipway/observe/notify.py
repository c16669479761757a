"""Notifications: events POSTed to webhook targets whose EventBridge pattern they match.

Delivery is at least once and in order per service per target: the EventBus writes
one ``pending`` row per matching target in the same transaction as the event, and
only the oldest pending row of each (target, service) chain is ever attempted, so
event N+1 of a service waits until event N was delivered or given up. Rows live
in the store, so an agent restart resumes where the last one stopped.

Each attempt is one POST (timeout 5 s, redirects not followed: a 3xx is a failure
that names where it pointed; only to addresses ``outbound.OutboundPolicy`` allows,
checked when a target is made and again at each connection) with

    X-Slipway-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the target's secret>
    X-Slipway-Event-Id: <the event's id>
    X-Slipway-Delivery-Attempt: <1, 2, ...>

The body is the event as JSON, or for ``format: slack`` an incoming-webhook message
``{"text": ...}``. A failed attempt is retried after 1 s, doubling to at most
5 min, with jitter; a delivery still failing ``max_age`` (24 h) after its event is
marked ``failed`` with the last error, and its chain moves on.

Dispatch is a job on the agent's scheduler: every second (so a retry goes at most that
late) and at once when an event is stored or an attempt ends (``wake``), so a chain's
next event follows its delivered one without waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import InvalidRequest, ResourceNotFound, SlipwayError
from ..jobs import Jobs
from ..outbound import OutboundPolicy, guarded_transport
from ..store import Store
from ..vault import Vault
from .patterns import validate_pattern

__all__ = ["FORMATS", "Notifier", "parse_config_targets", "sign"]

log = logging.getLogger("slipway.notify")

FORMATS = ("json", "slack")
MIN_SECRET = 16
USER_AGENT = "slipway-notify/1"
JOB = "notify"


def sign(secret: str, body: bytes) -> str:
    """The X-Slipway-Signature value a receiver recomputes to trust a delivery."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}: required, an http:// or https:// URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{where}: {url!r} is not an http:// or https:// URL")
    return url


def _check_pattern(pattern: Any) -> dict[str, Any]:
    if isinstance(pattern, str):  # EventBridge's API passes patterns as JSON text
        try:
            pattern = json.loads(pattern)
        except ValueError as exc:
            raise InvalidRequest(f"pattern: not valid JSON: {exc}") from exc
    validate_pattern(pattern)
    return pattern


def _check_format(fmt: Any, where: str) -> str:
    if fmt not in FORMATS:
        raise InvalidRequest(f"{where}: {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def _check_secret(secret: Any, where: str) -> str | None:
    if secret is None or secret == "":
        return None
    if not isinstance(secret, str) or len(secret) < MIN_SECRET:
        raise InvalidRequest(f"{where}: must be a string of at least {MIN_SECRET} characters")
    return secret


def parse_config_targets(value: Any, where: str = "notify_targets") -> list[dict[str, Any]]:
    """The config file's targets, checked: a list of {url, pattern, secret?, format?}
    (or that list as JSON text, as SLIPWAY_NOTIFY_TARGETS carries it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError as exc:
            raise InvalidRequest(f"{where}: not valid JSON: {exc}") from exc
    if not isinstance(value, list | tuple):
        raise InvalidRequest(f"{where}: expected a list of {{url, pattern, secret, format}}")
    targets = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{at}: expected a mapping with url and pattern")
        unknown = set(item) - {"url", "pattern", "secret", "format"}
        if unknown:
            raise InvalidRequest(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            pattern = _check_pattern(item.get("pattern"))
        except InvalidRequest as exc:
            raise InvalidRequest(f"{at}.{exc.message}") from exc
        targets.append(
            {
                "url": _check_url(item.get("url"), f"{at}.url"),
                "pattern": pattern,
                "secret": _check_secret(item.get("secret"), f"{at}.secret"),
                "format": _check_format(item.get("format") or "json", f"{at}.format"),
            }
        )
    return targets


def slack_text(event: dict[str, Any]) -> str:
    """One line a person reads in a channel: service, what happened, the code."""
    detail = event.get("detail") or {}
    mark = ":red_circle:" if detail.get("severity") == "ERROR" else ":large_green_circle:"
    code = detail.get("operationStatus") or (
        f"{detail.get('previousServiceStatus')} → {detail.get('currentServiceStatus')}"
    )
    text = f"{mark} *{detail.get('serviceName', '?')}*: {detail.get('message') or code}"
    reason = (detail.get("slipway") or {}).get("reason")
    if reason:
        text += f"\n> {reason}"
    return f"{text}\n`{code}` · {event.get('region')} · {event.get('time')}"


def _public(row: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "url", "pattern", "format", "source", "created_at")}
    if secret is not None:
        out["secret"] = secret
    return out


class Notifier:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        *,
        config_targets: Iterable[dict[str, Any]] = (),
        outbound: OutboundPolicy | None = None,
        max_age: float = 24 * 3600.0,
        timeout: float = 5.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        workers: int = 4,
        interval: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.vault = vault
        outbound = outbound or OutboundPolicy()  # public addresses only
        outbound.check()
        self.outbound = outbound  # where targets may point (setting outbound_allow)
        self.config_targets = parse_config_targets(list(config_targets))
        for index, target in enumerate(self.config_targets):
            outbound.check_url(target["url"], f"notify_targets[{index}].url")
        self.max_age = max_age
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.workers = workers
        self.transport = transport
        self.clock = clock
        self.interval = interval
        self._jobs: Jobs | None = None
        self._busy: set[tuple[str, str]] = set()  # (target, service) chains in flight
        self._busy_lock = threading.Lock()
        self._local = threading.local()
        # Its threads start with the first attempt; each attempt ends within ``timeout``.
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="slipway-notify")

    # -- targets -------------------------------------------------------------------

    def add_target(
        self,
        url: str,
        pattern: dict[str, Any] | str,
        *,
        secret: str | None = None,
        format: str = "json",  # the setting's name in the API and config
    ) -> dict[str, Any]:
        """Check and store a target; the result carries its secret, shown this once."""
        url = _check_url(url, "url")
        self.outbound.check_url(url, "url")
        pattern = _check_pattern(pattern)
        fmt = _check_format(format, "format")
        secret = _check_secret(secret, "secret") or secrets.token_hex(32)
        row = {
            "id": uuid.uuid4().hex,
            "url": url,
            "pattern": pattern,
            "secret": self.vault.seal(secret),
            "format": fmt,
            "created_at": self.clock(),
            "source": "api",
        }
        self.store.insert_notify_target(row)
        return _public(row, secret)

    def remove_target(self, target_id: str) -> None:
        row = self.store.get_notify_target(target_id)
        if row is None:
            raise ResourceNotFound(f"Notification target {target_id} not found")
        if row["source"] == "config":
            raise InvalidRequest(
                f"Notification target {target_id} comes from the config file; remove it there"
            )
        self.store.delete_notify_target(target_id)

    def list_targets(self) -> list[dict[str, Any]]:
        return [_public(row) for row in self.store.list_notify_targets()]

    def sync_config_targets(self) -> None:
        """Make the store's config targets those of the config file. A target keeps its
        id (and its pending deliveries) while its url, pattern and format stay the same."""
        wanted = {self._config_id(t): t for t in self.config_targets}
        current = {row["id"]: row for row in self.store.list_notify_targets("config")}
        with self.store.transaction():
            for target_id in current.keys() - wanted.keys():
                self.store.delete_notify_target(target_id)
            for target_id, target in wanted.items():
                if target_id not in current:
                    if not target["secret"]:
                        log.warning(  # by id: a webhook URL can itself be a credential
                            "notify target %s has no secret in the config file; its"
                            " signatures use a generated one",
                            target_id,
                        )
                    self.store.insert_notify_target(
                        {
                            "id": target_id,
                            "url": target["url"],
                            "pattern": target["pattern"],
                            "secret": self.vault.seal(target["secret"] or secrets.token_hex(32)),
                            "format": target["format"],
                            "created_at": self.clock(),
                            "source": "config",
                        }
                    )
                elif target["secret"]:
                    self.store.update_notify_target(
                        target_id, secret=self.vault.seal(target["secret"])
                    )

    @staticmethod
    def _config_id(target: dict[str, Any]) -> str:
        key = json.dumps([target["url"], target["pattern"], target["format"]], sort_keys=True)
        return "config-" + hashlib.sha256(key.encode()).hexdigest()[:20]

    # -- the delivery job ------------------------------------------------------------

    def schedule(self, jobs: Jobs) -> None:
        """Make the store's config targets the config file's, then look for due
        deliveries every ``interval`` s on the agent's scheduler, and at once on ``wake``."""
        self.sync_config_targets()
        self._jobs = jobs
        jobs.every(JOB, self.interval, self.dispatch)

    def wake(self) -> None:
        """Look for due deliveries now (the EventBus calls this after an event)."""
        if self._jobs is not None:
            self._jobs.run_soon(JOB)

    def dispatch(self) -> None:
        """Hand each due chain head to the pool, as many as it has threads free, so that
        nothing waits in its queue (a stopping agent waits for attempts under way only)."""
        now = self.clock()
        for head in self.store.delivery_heads():
            if head["next_attempt_at"] > now:
                continue
            chain = (head["target_id"], head["service_id"])
            with self._busy_lock:
                if len(self._busy) >= self.workers:
                    return  # the next attempt to end wakes the job again
                if chain in self._busy:
                    continue
                self._busy.add(chain)
            self._pool.submit(self._attempt_guarded, head, chain)

    def _attempt_guarded(self, head: dict[str, Any], chain: tuple[str, str]) -> None:
        try:
            self.attempt(head)
        except Exception:  # a bug must not leave the chain marked busy
            log.exception("notify: delivery of event %s failed unexpectedly", head["event_id"])
        finally:
            with self._busy_lock:
                self._busy.discard(chain)
            self.wake()  # the chain's next event may go now

    def run_once(self) -> int:
        """Attempt every due chain head once, in this thread; how many were tried.
        For tests and for a caller without the scheduler."""
        now = self.clock()
        due = [h for h in self.store.delivery_heads() if h["next_attempt_at"] <= now]
        for head in due:
            self.attempt(head)
        return len(due)

    # -- one attempt -------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=self.timeout,
                follow_redirects=False,
                # No proxy from the environment: the address connected to is the one checked.
                trust_env=False,
                transport=self.transport or guarded_transport(self.outbound),
                headers={"User-Agent": USER_AGENT},
            )
            self._local.client = client
        return client

    def attempt(self, head: dict[str, Any]) -> bool:
        """POST one delivery and record the outcome; True when it was delivered."""
        target = self.store.get_notify_target(head["target_id"])
        if target is None:  # removed meanwhile, with its deliveries
            return False
        attempt = head["attempts"] + 1
        try:
            secret = self.vault.open(target["secret"])
        except SlipwayError as exc:
            self._record_failure(head, attempt, exc.message, terminal=True)
            return False
        event = head["body"]
        payload = {"text": slack_text(event)} if target["format"] == "slack" else event
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Slipway-Signature": sign(secret, body),
            "X-Slipway-Event-Id": event["id"],
            "X-Slipway-Delivery-Attempt": str(attempt),
        }
        error = self._post(target["url"], body, headers)
        if error is None:
            now = self.clock()
            self.store.update_delivery(
                head["target_id"],
                head["event_id"],
                status="delivered",
                attempts=attempt,
                last_error=None,
                updated_at=now,
            )
            return True
        log.info(
            "notify: event %s to target %s, attempt %d: %s",
            event["id"],
            target["id"],
            attempt,
            error,
        )
        self._record_failure(head, attempt, error)
        return False

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the target took it (2xx); otherwise what went wrong, in words."""
        try:
            response = self._client().post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        if response.is_redirect:
            where = response.headers.get("location", "(no Location)")
            return (
                f"HTTP {response.status_code} redirect to {where} not followed;"
                " configure the final URL"
            )
        text = response.text.strip().replace("\n", " ")[:200]
        return f"HTTP {response.status_code}" + (f": {text}" if text else "")

    def _record_failure(
        self, head: dict[str, Any], attempt: int, error: str, *, terminal: bool = False
    ) -> None:
        now = self.clock()
        deadline = head["created_at"] + self.max_age
        if terminal or now >= deadline:
            self.store.update_delivery(
                head["target_id"],
                head["event_id"],
                status="failed",
                attempts=attempt,
                last_error=error,
                updated_at=now,
            )
            log.warning(
                "notify: gave up on event %s for target %s after %d attempt(s): %s",
                head["event_id"],
                head["target_id"],
                attempt,
                error,
            )
            return
        self.store.update_delivery(
            head["target_id"],
            head["event_id"],
            attempts=attempt,
            last_error=error,
            next_attempt_at=min(now + self.backoff(attempt), deadline),
            updated_at=now,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt + 1``: 1, 2, 4, ... up to 5 min, less 0-25 %
        jitter so that many failing chains do not retry in step."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay * (1 - 0.25 * random.random())
