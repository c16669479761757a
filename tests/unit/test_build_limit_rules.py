"""Build limits and the users instances run as: settings refused when nonsense, the
build's cgroup box on a fake cgroup tree, the watch's decisions with a fake docker, and
the runtime templates' unprivileged user."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from slipway.backends import Confinement
from slipway.backends.build_box import MB, BuildBox, BuildLimits, layer_bytes
from slipway.builds import CodeConfig
from slipway.builds.builder import Builder
from slipway.builds.dockerfile import Plan, Step
from slipway.builds.errors import BuildFailed, BuildLimitReached, BuildTimeout
from slipway.builds.limits import BuildWatch, check_context
from slipway.builds.progress import Progress
from slipway.builds.runtimes import load_runtimes
from slipway.config import load_settings
from slipway.errors import InvalidRequest

# --- settings ------------------------------------------------------------------------


def test_default_build_limits_are_accepted() -> None:
    BuildLimits().check()
    settings = load_settings(Path("/nonexistent"), environ={})
    assert settings.build_memory_mb == 2048 and settings.build_pids_limit == 1024
    assert settings.instance_user == ""


@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        (BuildLimits(memory_mb=0), "build_memory_mb must be 64 or more, not 0"),
        (BuildLimits(pids_limit=-1), "build_pids_limit must be 16 or more, not -1"),
        (BuildLimits(disk_max_mb=0), "build_disk_max_mb"),
        (BuildLimits(context_max_mb=-5), "build_context_max_mb"),
        (BuildLimits(image_max_mb=0), "image_max_mb"),
        (BuildLimits(cpus=0), "build_cpus"),
        (BuildLimits(cpus=-1.5), "build_cpus"),
    ],
)
def test_nonsense_build_limits_are_refused_naming_the_setting(
    limits: BuildLimits, setting: str
) -> None:
    with pytest.raises(InvalidRequest, match=setting):
        limits.check()
    with pytest.raises(InvalidRequest, match=setting):  # the agent would not start
        Builder(client=None, runtimes={}, limits=limits)


def test_a_build_timeout_of_zero_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="build_timeout must be more than 0"):
        Builder(client=None, runtimes={}, timeout=0)


def test_a_mistyped_limit_names_the_setting() -> None:
    with pytest.raises(InvalidRequest, match="setting build_memory_mb: '2GB'"):
        load_settings(Path("/nonexistent"), environ={"SLIPWAY_BUILD_MEMORY_MB": "2GB"})


@pytest.mark.parametrize("user", ["", "10001", "10001:10001", "app", "app:app", "nobody:65534"])
def test_instance_users_accepted(user: str) -> None:
    Confinement(user=user).check()


@pytest.mark.parametrize("user", ["-1", "app; rm -rf /", "10001:", ":10001", "Root"])
def test_instance_users_refused(user: str) -> None:
    with pytest.raises(InvalidRequest, match="instance_user"):
        Confinement(user=user).check()


def test_instance_user_is_forced_only_when_set() -> None:
    from slipway.backends.docker_engine import DockerEngine

    keep = DockerEngine(SimpleNamespace(), "127.77.0.0/16")
    assert "user" not in keep._confined("svc")
    forced = DockerEngine(SimpleNamespace(), "127.77.0.0/16", confinement=Confinement(user="1:2"))
    assert forced._confined("svc")["user"] == "1:2"


# --- the box -------------------------------------------------------------------------


@pytest.fixture()
def cgroups(tmp_path: Path) -> Path:
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller).mkdir()
    return tmp_path


def open_box(limits: BuildLimits, cgroups: Path) -> BuildBox:
    """A box on the fake tree, left there: its files, unlike the kernel's, keep its
    directories from being removed."""
    return BuildBox(limits, cgroups).__enter__()


def test_a_build_box_holds_its_limits_and_goes_away(cgroups: Path) -> None:
    limits = BuildLimits(memory_mb=256, cpus=0.5, pids_limit=64)
    with BuildBox(limits, cgroups) as box:
        assert box.boxed
        memory = cgroups / "memory" / box.name
        assert (memory / "memory.limit_in_bytes").read_text() == str(256 * MB)
        assert (cgroups / "pids" / box.name / "pids.max").read_text() == "64"
        assert (cgroups / "cpu" / box.name / "cpu.cfs_quota_us").read_text() == "50000"
        assert box.build_params() == {
            "cgroupparent": "/" + box.name,
            "cpuperiod": 100000,
            "cpuquota": 50000,
        }
        assert not box.pids_reached() and not box.memory_reached()
        (cgroups / "pids" / box.name / "pids.peak").write_text("64\n")
        (memory / "memory.max_usage_in_bytes").write_text(str(256 * MB))
        assert box.pids_reached() and box.memory_reached()
        for path in (cgroups / c / box.name for c in ("memory", "pids", "cpu")):
            for file in path.iterdir():  # what the kernel would not show as files
                file.unlink()
    assert not any((cgroups / c / box.name).exists() for c in ("memory", "pids", "cpu"))


def test_boxes_of_agents_gone_are_removed_not_those_of_live_ones(cgroups: Path) -> None:
    gone, live = "999999999-abc", f"{os.getpid()}-def"
    for name in (gone, live):
        (cgroups / "pids" / "slipway-builds" / name).mkdir(parents=True)
    open_box(BuildLimits(), cgroups)
    left = {p.name for p in (cgroups / "pids" / "slipway-builds").iterdir()}
    assert gone not in left and live in left


def test_without_a_cgroup_the_steps_get_memory_and_cpu_themselves(tmp_path: Path) -> None:
    (tmp_path / "memory").write_text("not a directory")
    with BuildBox(BuildLimits(memory_mb=300, cpus=2), tmp_path) as box:
        assert not box.boxed
        assert box.build_params() == {
            "memory": 300 * MB,
            "memswap": 300 * MB,
            "cpuperiod": 100000,
            "cpuquota": 200000,
        }
        assert not box.pids_reached() and not box.memory_reached()


def test_layer_bytes_counts_what_is_allocated_and_stops_past_the_limit(tmp_path: Path) -> None:
    assert layer_bytes(None, 10) == 0
    for n in range(3):
        (tmp_path / f"f{n}").write_bytes(b"x" * MB)
    assert 3 * MB <= layer_bytes(str(tmp_path), 100 * MB) < 4 * MB
    (tmp_path / "sparse").open("wb").truncate(100 * MB)  # a hole takes no disk
    assert layer_bytes(str(tmp_path), 100 * MB) < 4 * MB


# --- the watch -----------------------------------------------------------------------


class FakeBuilds:
    def __init__(self, upper: dict[str, str], image_bytes: int = 0) -> None:
        self.upper = upper
        self.image_bytes = image_bytes

    def upper_dir(self, container_id: str) -> str | None:
        return self.upper.get(container_id)

    def image_size(self, image: str) -> int:
        return self.image_bytes


def progress_at(command: str, container: str | None, log: list[str]) -> Progress:
    line = f'RUN ["/bin/sh", "-ec", "{command}"]'
    progress = Progress(Plan("", {line: Step("build", command, False)}), log.append)
    progress.feed({"stream": f"Step 3/5 : {line}\n"})
    if container:
        progress.feed({"stream": f" ---> Running in {container}\n"})
    return progress


def test_disk_writes_of_all_steps_count_against_the_limit(cgroups: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "data").write_bytes(b"x" * (3 * MB))
    log: list[str] = []
    box = open_box(BuildLimits(disk_max_mb=5), cgroups)
    uppers = {"a" * 12: str(first), "b" * 12: str(second)}
    watch = BuildWatch(box, FakeBuilds(uppers), log.append)
    assert watch.look(progress_at("one", "a" * 12, log)) is None
    progress = progress_at("two", "b" * 12, log)
    watch._next_look = 0.0
    assert watch.look(progress) is None
    (second / "data").write_bytes(b"x" * (3 * MB))
    watch._next_look = 0.0
    crossed = watch.look(progress)
    assert isinstance(crossed, BuildLimitReached) and crossed.setting == "build_disk_max_mb"
    assert crossed.command == "two"
    assert "[Build] build stopped: disk limit 5 MB reached (setting build_disk_max_mb)" in log


def test_a_killed_step_at_the_memory_limit_is_the_memory_limit(cgroups: Path) -> None:
    log: list[str] = []
    box = open_box(BuildLimits(memory_mb=128), cgroups)
    watch = BuildWatch(box, FakeBuilds({}), log.append)
    progress = progress_at("eat", None, log)
    killed = BuildFailed("build command failed (exit code 137): eat")
    assert watch.explain(killed, progress) is killed  # memory never reached its limit
    (cgroups / "memory" / box.name / "memory.max_usage_in_bytes").write_text(str(128 * MB))
    explained = watch.explain(killed, progress)
    other = BuildFailed("build command failed (exit code 1): eat")
    assert watch.explain(other, progress) is other
    assert isinstance(explained, BuildLimitReached) and explained.setting == "build_memory_mb"
    assert "[Build] build stopped: memory limit 128 MB reached (setting build_memory_mb)" in log


def test_an_image_over_its_limit_is_refused(cgroups: Path) -> None:
    log: list[str] = []
    box = open_box(BuildLimits(image_max_mb=100), cgroups)
    BuildWatch(box, FakeBuilds({}, 100 * MB), log.append).check_image("x")
    with pytest.raises(BuildLimitReached, match="image of 101 MB over its limit of 100 MB"):
        BuildWatch(box, FakeBuilds({}, 101 * MB + 1), log.append).check_image("x")


def test_a_context_over_its_limit_is_refused_before_the_copy(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "pack").write_bytes(b"x" * (2 * MB))  # not sent: not counted
    (tmp_path / "app.py").write_bytes(b"x" * MB)
    log: list[str] = []
    check_context(tmp_path, BuildLimits(context_max_mb=1), log.append)
    (tmp_path / "more.bin").write_bytes(b"x")
    with pytest.raises(BuildLimitReached, match="setting build_context_max_mb") as caught:
        check_context(tmp_path, BuildLimits(context_max_mb=1), log.append)
    assert caught.value.setting == "build_context_max_mb"
    assert log == [
        "[Build] build refused: build context over its limit of 1 MB (setting build_context_max_mb)"
    ]


# --- the runtimes' user --------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["python3", "python311", "nodejs18"])
def test_runtime_images_run_as_an_unprivileged_user(runtime: str) -> None:
    builder = Builder(client=None, runtimes=load_runtimes(), ca_bundle=None, proxy_env={})
    chosen = builder.runtimes[runtime]
    config = CodeConfig(runtime=runtime, build=("make",), pre_run=("migrate",), command="serve")
    lines = builder.render(chosen, "1", "base", config).splitlines()
    useradd = next(i for i, line in enumerate(lines) if "useradd --uid 10001" in line)
    user = lines.index("USER 10001:10001")
    assert useradd < lines.index('RUN ["/bin/sh", "-ec", "make"]') < user  # builds as root
    assert user < next(i for i, line in enumerate(lines) if line.startswith("CMD"))


def test_a_build_past_its_deadline_names_the_time_limit() -> None:
    cancelled: list[float] = []
    build = SimpleNamespace(cancel=lambda wait: cancelled.append(wait))
    builder = Builder(client=None, runtimes={}, timeout=30)
    log: list[str] = []
    error = builder._stop(build, progress_at("sleep 600", None, log), log.append, None)  # type: ignore[arg-type]
    assert isinstance(error, BuildTimeout) and error.setting == "build_timeout"
    assert error.command == "sleep 600" and cancelled
    assert "[Build] build stopped: time limit 30 s reached (setting build_timeout)" in log
