"""Instance stats from cgroup files, in the shape of Docker's stats answer, for cgroup
v1 and v2; a process whose cgroups do not name the container gives no sample."""

from __future__ import annotations

import os
from pathlib import Path

from slipway.backends.docker_cgroups import CgroupStats
from slipway.observe.metrics import cpu_percent, memory_percent

CID = "c0ffee" * 10


def host(tmp_path: Path, cgroup_lines: str) -> CgroupStats:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(cgroup_lines)
    (proc / "stat").write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7\n")
    (proc / "meminfo").write_text("MemTotal:        4096 kB\nMemFree:  1024 kB\n")
    return CgroupStats(proc, root)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1(tmp_path):
    lines = f"4:memory:/docker/{CID}\n2:cpu,cpuacct:/docker/{CID}\n1:name=systemd:/\n"
    stats = host(tmp_path, lines)
    root = tmp_path / "cgroup"
    write(root / "cpuacct" / "docker" / CID / "cpuacct.usage", "5000000\n")
    write(root / "memory" / "docker" / CID / "memory.usage_in_bytes", "2048\n")
    write(root / "memory" / "docker" / CID / "memory.limit_in_bytes", "9223372036854771712\n")
    write(root / "memory" / "docker" / CID / "memory.stat", "cache 8\ntotal_inactive_file 1024\n")

    sample = stats.sample(CID, 42)

    ticks = os.sysconf("SC_CLK_TCK")
    assert sample["cpu_stats"]["cpu_usage"]["total_usage"] == 5_000_000
    assert sample["cpu_stats"]["system_cpu_usage"] == 1000 * 1_000_000_000 // ticks
    # No limit: the host's memory, as Docker reports it; page cache left out.
    assert sample["memory_stats"]["limit"] == 4096 * 1024
    assert memory_percent(sample["memory_stats"]) == 100.0 * 1024 / (4096 * 1024)


def test_cgroup_v2_and_cpu_between_samples(tmp_path):
    stats = host(tmp_path, f"0::/system.slice/docker-{CID}.scope\n")
    group = tmp_path / "cgroup" / "system.slice" / f"docker-{CID}.scope"
    write(group / "cpu.stat", "usage_usec 1000\nuser_usec 600\n")
    write(group / "memory.current", "4096\n")
    write(group / "memory.max", "8192\n")
    write(group / "memory.stat", "anon 100\ninactive_file 0\n")
    first = stats.sample(CID, 42)
    assert first["memory_stats"]["limit"] == 8192
    assert memory_percent(first["memory_stats"]) == 50.0

    write(group / "cpu.stat", "usage_usec 501000\n")
    write(tmp_path / "proc" / "stat", "cpu  200 0 50 800 50 0 0 0 0 0\n")
    second = stats.sample(CID, 42)
    # 0.5 s of the container's CPU in 1 s of all CPUs (100 ticks at 100 Hz).
    used = cpu_percent(second["cpu_stats"], first["cpu_stats"], cpu_limit=1.0)
    cores = os.cpu_count() or 1
    expected = 0.5 / (100 / os.sysconf("SC_CLK_TCK")) * cores * 100
    assert abs(used - expected) < 1e-6


def test_no_sample_for_another_process_or_missing_files(tmp_path):
    stats = host(tmp_path, "4:memory:/docker/someoneelse\n2:cpu,cpuacct:/docker/someoneelse\n")
    assert stats.sample(CID, 42) is None  # a pid of another namespace: not this container
    assert stats.sample(CID, 0) is None  # not running
    assert stats.sample(CID, 7) is None  # no such process
    named = host(tmp_path / "b", f"4:memory:/docker/{CID}\n2:cpu,cpuacct:/docker/{CID}\n")
    assert named.sample(CID, 42) is None  # no cgroup files to read: Docker is asked


def test_a_round_reads_the_host_cpu_once_and_each_process_cgroups_once(tmp_path):
    lines = f"4:memory:/docker/{CID}\n2:cpu,cpuacct:/docker/{CID}\n"
    stats = host(tmp_path, lines)
    root = tmp_path / "cgroup"
    write(root / "cpuacct" / "docker" / CID / "cpuacct.usage", "5000000\n")
    write(root / "memory" / "docker" / CID / "memory.usage_in_bytes", "2048\n")
    write(root / "memory" / "docker" / CID / "memory.limit_in_bytes", "4096\n")
    write(root / "memory" / "docker" / CID / "memory.stat", "total_inactive_file 0\n")
    first = stats.sample_many({"by-id": (CID, 42), "by-name": (CID, 42), "gone": (CID, 7)})
    assert set(first) == {"by-id", "by-name"}
    (tmp_path / "proc" / "42" / "cgroup").unlink()  # kept while the process lives
    assert set(stats.sample_many({"by-id": (CID, 42)})) == {"by-id"}
    assert stats.sample_many({"restarted": (CID, 43)}) == {}  # a new process: read again
    (tmp_path / "proc" / "stat").unlink()
    assert stats.sample_many({"by-id": (CID, 42)}) == {}  # no host CPU time: Docker is asked
