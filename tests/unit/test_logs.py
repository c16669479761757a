"""LogStore: rotation and paging across it, age pruning, full disks, long and binary lines;
InstanceLines: docker's log records into lines (partials, re-attach, resume)."""

from __future__ import annotations

import errno
import json
import logging
import time
from pathlib import Path

import pytest

from slipway.backends import STDERR, STDOUT
from slipway.errors import InvalidRequest
from slipway.observe.applogs import InstanceLines, parse_timestamp
from slipway.observe.logs import MAX_LINE, LogStore, clean_line

SVC = "0123456789abcdef0123456789abcdef"
INST = "instance/0123456789ab"
DAY = 86400.0


def read_all(store: LogStore, stream: str, offset: int = 0, limit: int = 7) -> tuple[list, int]:
    """Every event from ``offset`` on, in small pages, and the offset after them."""
    events = []
    while True:
        batch, offset = store.read(SVC, stream, offset=offset, limit=limit)
        events += batch
        if not batch:
            return events, offset


def files(store: LogStore) -> list[str]:
    return sorted(p.name for p in (store.root / SVC).iterdir())


def test_append_read_and_follow_by_offset(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append(SVC, "events", "one\ntwo")
    events, offset = store.read(SVC, "events")
    assert [e.message for e in events] == ["one", "two"]
    assert store.read(SVC, "events", offset=offset) == ([], offset)
    store.append(SVC, "events", "three", timestamp=5.0)
    events, _ = store.read(SVC, "events", offset=offset)
    assert [(e.timestamp, e.message) for e in events] == [(5.0, "three")]


def test_stream_names(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append(SVC, "events", "e")
    store.append(SVC, INST, "i")
    store.append(SVC, "deployment/" + "a" * 8 + "-" + "b" * 27, "d")
    assert store.streams(SVC, "application") == [INST]
    assert store.streams(SVC, "service") == ["deployment/" + "a" * 8 + "-" + "b" * 27, "events"]
    for bad in ("instance/xyz", "instance/0123", "../x", "events/../../etc"):
        with pytest.raises(InvalidRequest):
            store.append(SVC, bad, "x")
    with pytest.raises(InvalidRequest):
        store.append("../other", "events", "x")


def test_rotation_keeps_files_and_pages_across_them(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=2048, keep_files=2)
    for i in range(200):
        store.append(SVC, INST, f"line {i:04d} " + "x" * 20, timestamp=float(i))
    name = "instance__0123456789ab.jsonl"
    assert files(store) == [name, f"{name}.1", f"{name}.2"]
    for name in files(store):
        assert (store.root / SVC / name).stat().st_size <= 2048
    events, _ = read_all(store, INST)
    numbers = [int(e.message.split()[1]) for e in events]
    assert numbers == list(range(numbers[0], 200))  # the newest, in order, none twice
    assert 200 - len(numbers) > 0  # the oldest went with the rotation


def test_offset_survives_rotation(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=2048, keep_files=3)
    store.append(SVC, "events", "first")
    _, offset = store.read(SVC, "events")
    for i in range(40):  # a few rotations while a follower waits
        store.append(SVC, "events", f"line {i} " + "y" * 30)
    events, offset = read_all(store, "events", offset)
    assert [e.message.split()[1] for e in events] == [str(i) for i in range(40)]
    assert store.read(SVC, "events", offset=offset)[0] == []
    store.append(SVC, "events", "after")
    assert [e.message for e in store.read(SVC, "events", offset=offset)[0]] == ["after"]


def test_offset_rotated_away_goes_on_from_the_oldest_kept(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1024, keep_files=1)
    store.append(SVC, "events", "first")
    _, offset = store.read(SVC, "events")
    for i in range(100):
        store.append(SVC, "events", f"line {i:03d} " + "z" * 30)
    events, _ = read_all(store, "events", offset)
    oldest = read_all(store, "events")[0]
    assert events == oldest and events[-1].message.startswith("line 099")


def test_file_from_before_rotation_keeps_its_offsets(tmp_path: Path) -> None:
    folder = tmp_path / SVC
    folder.mkdir()
    lines = [json.dumps({"t": float(i), "m": f"old {i}"}) + "\n" for i in range(3)]
    (folder / "events.jsonl").write_text("".join(lines))
    store = LogStore(tmp_path, max_bytes=1024)
    events, offset = store.read(SVC, "events", offset=len(lines[0]))
    assert [e.message for e in events] == ["old 1", "old 2"]
    for i in range(30):
        store.append(SVC, "events", f"new {i} " + "w" * 40)
    events, _ = read_all(store, "events", offset)
    assert [e.message.split()[1] for e in events] == [str(i) for i in range(30)]


def test_read_merged_since_skips_old_rotated_files(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1024, keep_files=5)
    for i in range(60):
        store.append(SVC, INST, f"app {i}", timestamp=1000.0 + i)
    store.append(SVC, "events", "svc", timestamp=1055.5)
    merged = store.read_merged(SVC, since=1050.0)
    assert [e.message for e in merged] == [f"app {i}" for i in range(50, 56)] + ["svc"] + [
        f"app {i}" for i in range(56, 60)
    ]
    assert [e.message for e in store.read_merged(SVC, [INST], since=1050, limit=2)] == [
        "app 50",
        "app 51",
    ]


def test_prune_by_age(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1024, keep_files=3, max_age_days=14)
    now = 100 * DAY
    gone, live = "instance/aaaaaaaaaaaa", "instance/bbbbbbbbbbbb"
    for i in range(60):  # rotated files of old events, then fresh ones
        store.append(SVC, "events", f"event {i} " + "e" * 20, timestamp=now - 30 * DAY + i)
    store.append(SVC, "events", "today", timestamp=now - 10)
    for i in range(50):
        store.append(SVC, gone, f"gone {i} " + "g" * 20, timestamp=now - 20 * DAY + i)
    store.append(SVC, live, "live", timestamp=now - 13 * DAY)
    assert store.last_timestamp(SVC, gone) == now - 20 * DAY + 49
    removed = store.prune(now)
    assert removed >= 4
    assert store.streams(SVC) == ["events", live]
    assert files(store) == ["events.jsonl", "instance__bbbbbbbbbbbb.jsonl"]
    assert [e.message for e in store.read(SVC, "events")[0]][-1] == "today"
    assert store.last_timestamp(SVC, gone) is None
    store.append(SVC, gone, "again")  # a stream pruned and written again starts afresh
    assert [e.message for e in store.read(SVC, gone)[0]] == ["again"]


class FullDisk:
    """A file whose writes land halfway, then fail as a full disk does."""

    def __init__(self, real, error: int) -> None:
        self._real = real
        self._error = error
        self._calls = 0

    def write(self, data) -> int:
        self._calls += 1
        if self._calls == 1 and len(data) > 1:
            return self._real.write(data[: len(data) // 2])
        raise OSError(self._error, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def test_full_disk_drops_lines_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = LogStore(tmp_path)
    store.append(SVC, "events", "before")
    real_open = Path.open

    def full_open(self: Path, mode: str = "r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        return FullDisk(fh, errno.ENOSPC) if "a" in mode else fh

    caplog.set_level(logging.WARNING, logger="slipway.logs")
    monkeypatch.setattr(Path, "open", full_open)
    for i in range(5):
        store.append(SVC, "events", f"lost {i}\nlost too")  # must not raise
    store.append(SVC, INST, "lost app line")
    assert store.dropped == {SVC: 11}
    (problem,) = store.problems()
    assert "ENOSPC" in problem and "11 lines dropped" in problem
    assert len(caplog.records) == 1

    monkeypatch.setattr(Path, "open", real_open)
    store.append(SVC, "events", "after")
    assert store.problems() == []
    assert len(caplog.records) == 2 and "11 lines were dropped" in caplog.records[1].message
    # no half-written line was left behind
    assert [e.message for e in store.read(SVC, "events")[0]] == ["before", "after"]
    raw = (tmp_path / SVC / "events.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["m"] for line in raw] == ["before", "after"]


def test_other_write_errors_are_dropped_too(tmp_path: Path) -> None:
    (tmp_path / SVC).write_text("a file where the folder should be")
    store = LogStore(tmp_path)
    store.append(SVC, "events", "nowhere to go")
    assert store.dropped == {SVC: 1} and store.problems()


def test_five_megabyte_line_is_cut(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append(SVC, INST, "x" * 5_000_000)
    (event,), _ = store.read(SVC, INST)
    assert event.message == "x" * MAX_LINE + f"…[cut {5_000_000 - MAX_LINE} bytes]"


def test_binary_and_broken_text_become_valid_text(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append_lines(SVC, INST, [(1.0, b"\xff\xfe\x00ok\x1b[31m"), (2.0, "lone \udce9")])
    events, _ = store.read(SVC, INST)
    assert [e.message for e in events] == ["\ufffd\ufffd\x00ok\x1b[31m", "lone \ufffd\ufffd\ufffd"]
    for event in events:
        event.message.encode("utf-8")  # what the API's JSON response needs


def test_cut_never_splits_a_character() -> None:
    text = clean_line(("é" * MAX_LINE).encode())
    head, marker = text.split("…")
    assert head == "é" * (MAX_LINE // 2) and marker == f"[cut {MAX_LINE} bytes]"
    assert clean_line(b"abc", cut=10) == "abc…[cut 10 bytes]"
    long = clean_line("x" * 100_000)
    assert clean_line(long) == long  # idempotent: the collector cuts, then the store


# -- docker records into lines -------------------------------------------------------------


def stamp(ns: int) -> bytes:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%09dZ" % nanos


T0 = 1_700_000_000_000_000_000


def rec(ns: int, text: bytes) -> bytes:
    return stamp(ns) + b" " + text


def test_parse_timestamp() -> None:
    assert parse_timestamp(b"2023-11-14T22:13:20.000000001Z") == T0 + 1
    assert parse_timestamp(b"2023-11-14T22:13:20Z") == T0
    assert parse_timestamp(b"2023-11-14T22:13:20.5Z") == T0 + 500_000_000
    assert parse_timestamp(b"garbage") is None


def test_partial_records_are_joined_per_source() -> None:
    lines = InstanceLines()
    assert lines.feed(STDOUT, rec(T0, b"a" * 10)) == []
    assert lines.feed(STDERR, rec(T0 + 5, b"error\n")) == [((T0 + 5) / 1e9, "error")]
    assert lines.feed(STDOUT, rec(T0, b"b" * 10)) == []
    assert lines.feed(STDOUT, rec(T0, b"c\n")) == [(T0 / 1e9, "a" * 10 + "b" * 10 + "c")]


def test_long_line_in_pieces_is_cut_with_the_exact_count() -> None:
    lines = InstanceLines()
    piece = b"p" * 16384
    out = []
    for _ in range(305):
        out += lines.feed(STDOUT, rec(T0, piece))
    out += lines.feed(STDOUT, rec(T0, b"end\n"))
    ((_, text),) = out
    assert text == "p" * MAX_LINE + f"…[cut {305 * 16384 + 3 - MAX_LINE} bytes]"


def test_reattach_skips_what_was_seen_even_with_equal_timestamps() -> None:
    lines = InstanceLines()
    records = [rec(T0 + i // 2, b"line %d\n" % i) for i in range(10)]  # pairs share a time
    got = [text for r in records[:5] for _, text in lines.feed(STDOUT, r)]
    assert lines.since_ns() == T0 + 2 - 2_000_000_000
    lines.reattached()
    got += [text for r in records for _, text in lines.feed(STDOUT, r)]  # docker repeats
    assert got == [f"line {i}" for i in range(10)]


def test_reattach_in_the_middle_of_a_long_line() -> None:
    lines = InstanceLines()
    pieces = [rec(T0, b"a" * 100), rec(T0, b"b" * 100), rec(T0, b"c\n")]
    assert lines.feed(STDOUT, pieces[0]) == []
    lines.reattached()
    out = [x for p in pieces for x in lines.feed(STDOUT, p)]
    assert out == [(T0 / 1e9, "a" * 100 + "b" * 100 + "c")]


def test_resume_after_restart_skips_stored_lines_of_every_source() -> None:
    ms = 1_000_000
    stored = (T0 + 30 * ms) / 1e9  # the newest line the last run stored
    lines = InstanceLines(resume_after=stored)
    assert abs(lines.since_ns() - (T0 + 30 * ms - 2_000_000_000)) < 1000
    lines.reattached()
    out = []
    for k, source in ((10, STDOUT), (20, STDERR), (30, STDOUT), (40, STDERR)):
        out += lines.feed(source, rec(T0 + k * ms, b"%d\n" % k))
    out += lines.feed(STDOUT, rec(T0 + 50 * ms, b"new\n"))
    assert [text for _, text in out] == ["40", "new"]


def test_binary_output_and_unterminated_last_line() -> None:
    lines = InstanceLines()
    assert lines.feed(STDOUT, rec(T0, b"\x00\xff\xc3\n")) == [(T0 / 1e9, "\x00\ufffd\ufffd")]
    assert lines.feed(STDOUT, rec(T0 + 1, b"no newline")) == []
    assert lines.flush() == [((T0 + 1) / 1e9, "no newline")]
    assert lines.feed(STDOUT, b"not docker's format\n")[0][1] == "not docker's format"


# -- the collector's follow loop, with a fake source ----------------------------------------


def instance(container_id: str = "c0ffee" * 10, state: str = "running"):
    from slipway.backends import Instance

    return Instance(container_id, "n", SVC, "d", "r", state, None, None, None)


def test_follower_survives_a_daemon_restart_without_repeating(tmp_path: Path) -> None:
    from slipway.backends.fake import FakeBackend, FakeLogStream
    from slipway.errors import BackendError
    from slipway.observe.applogs import AppLogCollector, instance_stream

    now = time.time_ns()  # the first sync prunes: older lines would go at once
    lines = [rec(now + i * 1000, b"line %d\n" % i) for i in range(6)]
    piece = rec(now + 2500, b"long ")
    everything = (
        [(STDOUT, r) for r in lines[:3]] + [(STDOUT, piece)] + [(STDOUT, r) for r in lines[3:]]
    )
    inst = instance()
    backend = FakeBackend(
        log_streams={
            inst.id: [
                FakeLogStream(everything[:4], True),  # dockerd stops mid-line
                BackendError("cannot reach the docker daemon"),
                BackendError("cannot reach the docker daemon"),
                FakeLogStream(everything[:5], True),  # back: docker repeats from since=
                FakeLogStream(everything, False),  # it stopped meanwhile: its whole log
            ]
        }
    )
    store = LogStore(tmp_path)
    collector = AppLogCollector(store, backend, retry_max=0.01)
    collector.sync([inst])
    deadline = time.monotonic() + 5
    while collector.followed() and time.monotonic() < deadline:
        time.sleep(0.01)
    collector.stop()
    got = [e.message for e in store.read(SVC, instance_stream(inst.id))[0]]
    assert got == ["line 0", "line 1", "line 2", "long line 3", "line 4", "line 5"]
    assert backend.followed_since[0] == 0 and backend.followed_since[-1] > 0


def test_read_merged_newest_reads_back_from_the_end(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1024, keep_files=5)
    for i in range(60):
        store.append(SVC, INST, f"app {i}", timestamp=1000.0 + i)
    store.append(SVC, "events", "svc", timestamp=1057.5)
    newest = store.read_merged(SVC, None, limit=4, newest=True)
    assert [e.message for e in newest] == ["app 57", "svc", "app 58", "app 59"]
    assert [e.message for e in store.read_merged(SVC, [INST], 1058, limit=9, newest=True)] == [
        "app 58",
        "app 59",
    ]
    assert store.read_merged(SVC, []) == []  # no streams asked for, none read
