"""Poller: jobs per source, sync, spread, jitter, backoff, on_found only on change; and
check_source against a GitServer and a canned registry."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.jobstores.base import JobLookupError

from slipway.errors import ImageNotFound, RegistryUnreachable, SlipwayError
from slipway.sources.git import GitSource
from slipway.sources.git_errors import BranchNotFound
from slipway.sources.registry import RegistryClient
from slipway.triggers import Found, Watch
from slipway.triggers.poll import Poller, PollFailed, check_source
from slipway.triggers.tags import NoMatchingTag
from testkit.gitserver import GitServer

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


# -- a scheduler that runs jobs only when told ---------------------------------------


class FakeJob:
    def __init__(
        self, func: Callable[..., None], args: tuple[Any, ...], trigger: Any, when: datetime
    ):
        self.func, self.args, self.trigger, self.next_run_time = func, args, trigger, when

    def due_in(self) -> float:
        return (self.next_run_time - datetime.now(UTC)).total_seconds()


class FakeScheduler:
    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.running = False
        self.modified: list[str] = []

    def start(self) -> None:
        self.running = True

    def shutdown(self, wait: bool = True) -> None:
        self.running = False

    def add_job(
        self,
        func: Callable[..., None],
        trigger: Any = None,
        args: tuple[Any, ...] = (),
        id: str | None = None,
        next_run_time: datetime | None = None,
        replace_existing: bool = False,
        **options: Any,
    ) -> None:
        assert id is not None
        assert options.get("max_instances") == 1 and options.get("coalesce") is True
        self.jobs[id] = FakeJob(func, args, trigger, next_run_time or datetime.now(UTC))

    def modify_job(self, job_id: str, **changes: Any) -> None:
        if job_id not in self.jobs:
            raise JobLookupError(job_id)
        self.modified.append(job_id)
        job = self.jobs[job_id]
        job.trigger = changes.get("trigger", job.trigger)
        job.next_run_time = changes.get("next_run_time", job.next_run_time)

    def remove_job(self, job_id: str) -> None:
        if job_id not in self.jobs:
            raise JobLookupError(job_id)
        del self.jobs[job_id]

    def polls(self) -> dict[str, FakeJob]:
        return {k[len("slipway:poll:") :]: j for k, j in self.jobs.items() if "poll:" in k}

    def run(self, key: str) -> None:
        job = self.jobs["slipway:poll:" + key]
        job.func(*job.args)


def watch(
    key: str = "git|a|main", interval: float = 60.0, services: tuple[str, ...] = ("s1",)
) -> Watch:
    return Watch(
        key=key,
        kind="git",
        location=f"http://git.example/{key}",
        ref="main",
        track_tags=None,
        interval=interval,
        service_ids=services,
    )


class Recorder:
    """list_watches, check, on_found and on_error for a poller, all scripted."""

    def __init__(self, *watches: Watch) -> None:
        self.watches = list(watches)
        self.results: dict[str, list[Found | Exception]] = {}
        self.checked: list[str] = []
        self.found: list[tuple[str, Found]] = []
        self.errors: list[tuple[str, SlipwayError, float]] = []

    def list_watches(self) -> list[Watch]:
        return list(self.watches)

    def check(self, w: Watch) -> Found:
        self.checked.append(w.key)
        script = self.results.get(w.key) or [Found("sha-1", "refs/heads/main")]
        result = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(result, Exception):
            raise result
        return result

    def on_found(self, w: Watch, found: Found) -> None:
        self.found.append((w.key, found))

    def on_error(self, w: Watch, exc: SlipwayError, retry_in: float) -> None:
        self.errors.append((w.key, exc, retry_in))


def poller(rec: Recorder, **kwargs: Any) -> tuple[Poller, FakeScheduler]:
    scheduler = FakeScheduler()
    clock = iter(range(10**6))
    p = Poller(
        rec.list_watches,
        rec.check,
        rec.on_found,
        rec.on_error,
        scheduler=scheduler,  # type: ignore[arg-type]
        clock=lambda: float(next(clock)),
        **kwargs,
    )
    return p, scheduler


# -- jobs and sync ------------------------------------------------------------------


def test_one_job_per_source_however_many_services_share_it() -> None:
    shared = [watch("git|a|main", services=(f"s{i}",)) for i in range(5)]
    rec = Recorder(*shared, watch("git|b|main", services=("t",)))
    p, sched = poller(rec)
    p.start()

    assert sorted(sched.polls()) == ["git|a|main", "git|b|main"]
    assert "slipway:poll-sync" in sched.jobs
    status = p.status("git|a|main")
    assert status is not None and status.watch.service_ids == ("s0", "s1", "s2", "s3", "s4")
    sched.run("git|a|main")
    assert rec.checked == ["git|a|main"]
    assert rec.found == [("git|a|main", Found("sha-1", "refs/heads/main"))]


def test_sync_adds_removes_and_reschedules_on_interval_change() -> None:
    rec = Recorder(watch("a"), watch("b"))
    p, sched = poller(rec)
    p.start()
    b_job = sched.polls()["b"]

    rec.watches = [watch("c", interval=30), watch("a", interval=5), watch("b")]
    sched.modified.clear()
    p.sync()
    assert sorted(sched.polls()) == ["a", "b", "c"]
    assert sched.polls()["b"] is b_job
    assert sched.modified == ["slipway:poll:a"]  # only the interval change touched a job
    assert 0 <= sched.polls()["a"].due_in() < 5

    rec.watches = [watch("c", interval=30)]
    p.sync()
    assert sorted(sched.polls()) == ["c"]
    assert p.status("a") is None and p.watched_keys() == ["c"]


def test_first_runs_are_spread_over_the_interval() -> None:
    rec = Recorder(*[watch(f"repo{i}", interval=60) for i in range(300)])
    p, sched = poller(rec)
    before = datetime.now(UTC)
    p.start()
    offsets = [(j.next_run_time - before).total_seconds() for j in sched.polls().values()]
    assert all(0 <= o < 60.5 for o in offsets)
    buckets = {int(o // 10) for o in offsets}
    assert buckets == {0, 1, 2, 3, 4, 5}  # 300 first runs fall in every 10 s of the minute
    assert max(offsets.count(o) for o in offsets) == 1
    assert all(0 <= p.status(f"repo{i}").next_in < 60 for i in range(300))  # type: ignore[union-attr]


def test_each_run_is_rescheduled_within_jitter() -> None:
    rec = Recorder(watch("a", interval=100))
    p, sched = poller(rec, jitter=0.2)
    p.start()
    delays = []
    for _ in range(200):
        sched.run("a")
        status = p.status("a")
        assert status is not None
        delays.append(status.next_in)
        assert abs(sched.polls()["a"].due_in() - status.next_in) < 1
    assert all(80 <= d <= 120 for d in delays)
    assert min(delays) < 90 and max(delays) > 110  # really spread, not a constant


def test_backoff_doubles_is_capped_and_resets_after_a_success() -> None:
    rec = Recorder(watch("a", interval=60))
    down = RegistryUnreachable("registry down")
    rec.results["a"] = [down] * 6 + [Found("sha-2", "refs/heads/main")]
    p, sched = poller(rec, jitter=0.0, max_backoff=900)
    p.start()
    for _ in range(7):
        sched.run("a")
    assert [retry for _, _, retry in rec.errors] == [120, 240, 480, 900, 900, 900]
    assert all(exc is down for _, exc, _ in rec.errors)
    status = p.status("a")
    assert status is not None and status.failures == 0 and status.next_in == 60
    assert rec.found == [("a", Found("sha-2", "refs/heads/main"))]

    rec.results["a"] = [down]
    sched.run("a")
    assert rec.errors[-1][2] == 120  # counting starts over


def test_backoff_keeps_the_jitter_of_the_interval() -> None:
    rec = Recorder(watch("a", interval=60))
    rec.results["a"] = [RegistryUnreachable("down")]
    p, sched = poller(rec, jitter=0.2, max_backoff=300)
    p.start()
    for _ in range(10):
        sched.run("a")
    retries = [r for _, _, r in rec.errors]
    assert 108 <= retries[0] <= 132
    assert all(288 <= r <= 312 for r in retries[3:])


def test_terminal_errors_back_off_too_and_are_reported() -> None:
    rec = Recorder(watch("a", interval=10))
    gone = BranchNotFound("branch main not found")
    rec.results["a"] = [gone, gone, Found("sha-1", "refs/heads/main")]
    p, sched = poller(rec, jitter=0.0)
    p.start()
    sched.run("a")
    sched.run("a")
    assert [(exc.terminal, r) for _, exc, r in rec.errors] == [(True, 20), (True, 40)]  # type: ignore[attr-defined]
    sched.run("a")  # the branch came back
    assert rec.found == [("a", Found("sha-1", "refs/heads/main"))]
    assert "slipway:poll:a" in sched.jobs


def test_an_exception_in_check_does_not_kill_the_job(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(watch("a", interval=10))
    rec.results["a"] = [KeyError("surprise"), Found("sha-1", "refs/heads/main")]
    p, sched = poller(rec, jitter=0.0)
    p.start()
    with caplog.at_level(logging.ERROR, logger="slipway.triggers.poll"):
        sched.run("a")
    ((_, exc, retry),) = rec.errors
    assert isinstance(exc, PollFailed) and not exc.terminal and "KeyError" in exc.message
    assert retry == 20
    assert any(r.exc_info for r in caplog.records)  # logged with its traceback
    sched.run("a")
    assert rec.found == [("a", Found("sha-1", "refs/heads/main"))]


def test_on_found_only_when_what_is_found_changes() -> None:
    rec = Recorder(watch("a"))
    one, two = Found("sha-1", "refs/heads/main"), Found("sha-2", "refs/heads/main")
    rec.results["a"] = [one, one, one, two, two, one]
    p, sched = poller(rec)
    p.start()
    for _ in range(6):
        sched.run("a")
    assert [f for _, f in rec.found] == [one, two, one]
    assert len(rec.checked) == 6


def test_on_found_again_after_a_re_add_or_a_new_service() -> None:
    rec = Recorder(watch("a"))
    p, sched = poller(rec)
    p.start()
    sched.run("a")
    sched.run("a")
    assert len(rec.found) == 1

    rec.watches = [watch("a", services=("s1", "s2"))]  # a second service follows the source
    p.sync()
    sched.run("a")
    assert len(rec.found) == 2
    assert p.status("a").last_found is not None  # type: ignore[union-attr]

    rec.watches = []
    p.sync()
    rec.watches = [watch("a", services=("s1", "s2"))]
    p.sync()
    sched.run("a")
    assert len(rec.found) == 3


def test_a_failed_on_found_is_offered_again(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(watch("a"))
    calls: list[Found] = []

    def flaky(w: Watch, found: Found) -> None:
        calls.append(found)
        if len(calls) == 1:
            raise RuntimeError("database is locked")

    p = Poller(rec.list_watches, rec.check, flaky, rec.on_error, scheduler=FakeScheduler())  # type: ignore[arg-type]
    sched: FakeScheduler = p._scheduler  # type: ignore[assignment]
    p.start()
    with caplog.at_level(logging.ERROR):
        sched.run("a")
    sched.run("a")
    sched.run("a")
    assert len(calls) == 2
    assert rec.errors == []  # the source was fine


def test_poll_now_runs_soon_or_right_after_the_check_under_way() -> None:
    rec = Recorder(watch("a", interval=600))
    p, sched = poller(rec)
    p.start()
    p.poll_now("a")
    assert sched.polls()["a"].due_in() <= 0

    def check_with_webhook(w: Watch) -> Found:
        p.poll_now("a")  # a webhook arrives while the check runs
        return Found("sha-1", "refs/heads/main")

    p._check = check_with_webhook
    sched.run("a")
    assert sched.polls()["a"].due_in() <= 0
    p._check = rec.check
    sched.run("a")
    assert sched.polls()["a"].due_in() > 400


def test_poll_now_of_a_new_key_syncs_first() -> None:
    rec = Recorder(watch("a"))
    p, sched = poller(rec)
    p.start()
    rec.watches.append(watch("b"))
    p.poll_now("b")
    assert sched.polls()["b"].due_in() <= 0
    p.poll_now("nothing")  # unknown: quietly nothing


def test_a_key_removed_during_its_check_is_not_rescheduled_or_reported() -> None:
    rec = Recorder(watch("a"))
    p, sched = poller(rec)
    p.start()
    job = sched.polls()["a"]

    def check_then_removed(w: Watch) -> Found:
        rec.watches = []
        p.sync()
        return Found("sha-1", "refs/heads/main")

    p._check = check_then_removed
    job.func(*job.args)
    assert "a" not in sched.polls() and rec.found == []


def test_bad_settings_are_refused() -> None:
    rec = Recorder()
    with pytest.raises(ValueError):
        Poller(rec.list_watches, rec.check, rec.on_found, rec.on_error, jitter=1.0)
    with pytest.raises(ValueError):
        Poller(rec.list_watches, rec.check, rec.on_found, rec.on_error, max_backoff=0)


def test_stop_removes_jobs_from_a_scheduler_it_does_not_own() -> None:
    rec = Recorder(watch("a"), watch("b"))
    p, sched = poller(rec)
    sched.jobs["someone-else"] = FakeJob(print, (), None, datetime.now(UTC))
    p.start()
    p.stop()
    assert list(sched.jobs) == ["someone-else"]
    assert sched.running  # not ours to shut down


# -- the real scheduler -----------------------------------------------------------------


def test_real_scheduler_polls_every_source_with_a_bounded_pool() -> None:
    rec = Recorder(*[watch(f"r{i}", interval=0.05) for i in range(30)])
    rec.results["r0"] = [RuntimeError("boom")]
    lock = threading.Lock()
    threads: set[int] = set()
    inner = rec.check

    def check(w: Watch) -> Found:
        with lock:
            threads.add(threading.get_ident())
            return inner(w)

    baseline = threading.active_count()
    p = Poller(rec.list_watches, check, rec.on_found, rec.on_error, jitter=0.2, max_backoff=0.1)
    p.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                done = {k for k in rec.checked}
                r0_runs = rec.checked.count("r0")
            if len(done) == 30 and r0_runs >= 5 and len(rec.checked) >= 300:
                break
            time.sleep(0.05)
        assert threading.active_count() <= baseline + 10 + 1  # the pool and the scheduler
    finally:
        p.stop()
    assert len(done) == 30 and len(rec.checked) >= 300
    assert r0_runs >= 5  # the failing job kept running
    assert len(threads) <= 10
    assert len(rec.found) == 29  # one each: nothing changed after the first check
    settled = len(rec.checked)
    time.sleep(0.2)
    assert len(rec.checked) == settled  # stopped means stopped


def test_stop_while_checks_run_does_not_hang() -> None:
    started = threading.Event()
    rec = Recorder(*[watch(f"r{i}", interval=0.01) for i in range(5)])

    def slow(w: Watch) -> Found:
        started.set()
        time.sleep(0.2)
        return Found("sha", "refs/heads/main")

    p = Poller(rec.list_watches, slow, rec.on_found, rec.on_error)
    p.start()
    for key in p.watched_keys():
        p.poll_now(key)
    assert started.wait(5)
    stopper = threading.Thread(target=p.stop)
    stopper.start()
    stopper.join(5)
    assert not stopper.is_alive()


# -- check_source -------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "served") as srv:
        yield srv


def git_watch(
    url: str, ref: str = "main", track: str | None = None, token: str | None = None
) -> Watch:
    return Watch(
        key=f"git|{url}|{ref}|{track}",
        kind="git",
        location=url,
        ref=ref,
        track_tags=track,
        interval=60,
        service_ids=("s",),
        credentials=lambda: token,
    )


def image_watch(tag: str = "v1", track: str | None = None, creds: Any = None) -> Watch:
    return Watch(
        key=f"image|{tag}|{track}",
        kind="image",
        location="127.0.0.1:5000/team/hello",
        ref=tag,
        track_tags=track,
        interval=60,
        service_ids=("s",),
        credentials=lambda: creds,
    )


def test_check_source_git_branch(server: GitServer) -> None:
    server.create_repo("app", {"a": "1"})
    server.create_branch("app", "dev")
    tip = server.commit("app", {"a": "2"}, branch="dev")
    check = check_source(GitSource(timeout=5), RegistryClient())
    assert check(git_watch(server.url("app"), "dev")) == Found(tip, "refs/heads/dev")
    assert check(git_watch(server.url("app"), "refs/heads/dev")) == Found(tip, "refs/heads/dev")
    with pytest.raises(BranchNotFound):
        check(git_watch(server.url("app"), "gone"))


def test_check_source_git_tags(server: GitServer) -> None:
    first = server.create_repo("app", {"a": "1"})
    second = server.commit("app", {"a": "2"})
    third = server.commit("app", {"a": "3"})
    server.tag("app", "v1.9.0", first)
    server.tag("app", "v1.10.0", second)
    server.tag("app", "v2.0.0-rc.1", third)
    check = check_source(GitSource(timeout=5), RegistryClient())
    url = server.url("app")
    assert check(git_watch(url, track="^1")) == Found(second, "refs/tags/v1.10.0")
    assert check(git_watch(url, track="v*")) == Found(third, "refs/tags/v2.0.0-rc.1")
    with pytest.raises(NoMatchingTag, match="v2.0.0-rc.1"):
        check(git_watch(url, track="^3"))


def test_check_source_git_uses_the_watch_token(tmp_path: Path) -> None:
    with GitServer(tmp_path / "p", auth=("x-access-token", "tok")) as private:
        sha = private.create_repo("app", {"a": "1"})
        check = check_source(GitSource(timeout=5), RegistryClient())
        assert check(git_watch(private.url("app"), token="tok")).revision == sha


def canned_registry(seen: list[httpx.Request]) -> RegistryClient:
    digests = {"v1": DIGEST_A, "v1.2.0": DIGEST_A, "v1.10.0": DIGEST_B}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/v2/team/hello/tags/list":
            return httpx.Response(200, json={"tags": ["v1", "v1.2.0", "v1.10.0", "latest"]})
        tag = path.rsplit("/", 1)[-1]
        if tag not in digests:
            return httpx.Response(404)
        return httpx.Response(200, headers={"Docker-Content-Digest": digests[tag]})

    return RegistryClient(transport=httpx.MockTransport(handler))


def test_check_source_image_tag() -> None:
    seen: list[httpx.Request] = []
    check = check_source(GitSource(), canned_registry(seen))
    assert check(image_watch("v1")) == Found(DIGEST_A, "v1")
    assert [r.url.path for r in seen] == ["/v2/team/hello/manifests/v1"]
    with pytest.raises(ImageNotFound):
        check(image_watch("v9"))


def test_check_source_image_tag_tracking_resolves_the_newest_tag() -> None:
    seen: list[httpx.Request] = []
    check = check_source(GitSource(), canned_registry(seen))
    assert check(image_watch(track="^1.2")) == Found(DIGEST_B, "v1.10.0")
    assert [r.url.path for r in seen] == [
        "/v2/team/hello/tags/list",
        "/v2/team/hello/manifests/v1.10.0",
    ]
    with pytest.raises(NoMatchingTag):
        check(image_watch(track="release-*"))


def test_check_source_image_passes_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "Authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="ecr"'})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST_A})

    check = check_source(GitSource(), RegistryClient(transport=httpx.MockTransport(handler)))
    assert check(image_watch(creds=("AWS", "pw"))).revision == DIGEST_A
    assert seen[-1].headers["Authorization"].startswith("Basic ")
