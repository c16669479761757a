"""What slipway's Builder costs over a plain ``docker build`` of the same Dockerfile.

Usage: .venv/bin/python bench/build.py [--repeat N] [--example NAME ...] [--record]

For each example (examples/python-hello, examples/node-hello) it times three builds:

- cold: nothing cached (``nocache=True``);
- code: a code-only change (a comment appended to the app), everything warm;
- deps: a dependency change (a new pin in requirements.txt / package.json + lock).

Each is done through ``Builder.build`` (context copy, render, stream parsing, labels,
prune: all of slipway's work) and, next to it, as a plain docker build: the same rendered
Dockerfile and context, prepared by hand beforehand and not timed, sent with
``client.api.build``. The two keep separate cache lineages (a LABEL naming the lineage
follows FROM) so neither warms the other's cache; their order alternates per repeat.
Medians over --repeat runs are printed as a table; --record appends it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import docker
from common import record

from slipway.builds import CodeConfig
from slipway.builds.builder import (
    LABEL_BUILD_REVISION,
    LABEL_BUILD_RUNTIME,
    LABEL_BUILD_SERVICE,
    Builder,
)
from slipway.builds.config import parse_apprunner_yaml
from slipway.builds.runtimes import Runtime, load_runtimes, resolve_version

ROOT = Path(__file__).resolve().parents[1]

CA = Path("/etc/ssl/certs/ca-certificates.crt")
EXAMPLES = {"python-hello": "app.py", "node-hello": "server.js"}
SCENARIOS = ("cold", "code", "deps")


def lineage_runtimes(lineage: str) -> dict[str, Runtime]:
    """The shipped runtimes with a LABEL after FROM that names the cache lineage."""
    out = {}
    for name, runtime in load_runtimes().items():
        template = runtime.template.replace(
            "FROM {{ base_image }}\n", f"FROM {{{{ base_image }}}}\nLABEL slipway.bench={lineage}\n"
        )
        out[name] = dataclasses.replace(runtime, template=template)
    return out


def change_code(source: Path, code_file: str, n: int) -> None:
    comment = "//" if code_file.endswith(".js") else "#"
    with (source / code_file).open("a") as fh:
        fh.write(f"\n{comment} bench code change {n} {uuid.uuid4().hex}\n")


def change_deps(source: Path, n: int, base_image: str) -> None:
    """A dependency change never seen before by either cache lineage."""
    if (source / "requirements.txt").exists():
        versions = ["1.16.0", "1.15.0", "1.14.0", "1.13.0", "1.12.0", "1.11.0"]
        lines = (source / "requirements.txt").read_text().splitlines()
        lines = [line for line in lines if not line.startswith("six==")]
        lines.append(f"six=={versions[n % len(versions)]}")
        (source / "requirements.txt").write_text("\n".join(lines) + "\n")
        return
    package = json.loads((source / "package.json").read_text())
    versions = ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    package["dependencies"]["escape-html"] = versions[n % len(versions)]
    package["description"] += f" ({n})"
    (source / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    # npm ci wants a matching lock: make it with the runtime's own npm (not timed).
    subprocess.run(
        ["docker", "run", "--rm", "-v", f"{source}:/src", "-v", f"{CA}:/ca.crt:ro",
         "-e", "NODE_EXTRA_CA_CERTS=/ca.crt", "-w", "/src", base_image,
         "npm", "install", "--package-lock-only", "--no-audit", "--no-fund"],
        check=True, capture_output=True,
    )  # fmt: skip


def plain_build(
    client: docker.DockerClient,
    builder: Builder,
    source: Path,
    config: CodeConfig,
    tag: str,
    nocache: bool,
    labels: dict[str, str],
) -> float:
    """docker build of the same rendered Dockerfile and context; only the build is timed."""
    runtime = builder.runtimes[config.runtime]
    version, base_image = resolve_version(runtime, config.runtime_version)
    manifests = [m for m in runtime.manifests if (source / m).is_file()]
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        context = Path(tmp)
        shutil.copytree(source, context / "source")
        (context / ".slipway" / "deps").mkdir(parents=True)
        for name in manifests:
            shutil.copyfile(source / name, context / ".slipway" / "deps" / name)
        shutil.copyfile(CA, context / ".slipway" / "ca-certificates.crt")
        labels = {**labels, LABEL_BUILD_RUNTIME: f"{runtime.name} {version}"}
        dockerfile = builder.render(runtime, version, base_image, config, manifests, labels=labels)
        (context / ".slipway" / "Dockerfile").write_text(dockerfile)
        started = time.perf_counter()
        for chunk in client.api.build(
            path=str(context), dockerfile=".slipway/Dockerfile", tag=tag, rm=True,
            forcerm=True, decode=True, nocache=nocache,
        ):  # fmt: skip
            if "error" in chunk:
                raise RuntimeError(f"plain docker build failed: {chunk['error']}")
        return time.perf_counter() - started


Timing = dict[str, float]  # slipway (whole Builder.build), prune (its share), docker


def slipway_build(
    builder: Builder, service: str, source: Path, config: CodeConfig, revision: str, nocache: bool
) -> tuple[float, float]:
    """Seconds of the whole Builder.build call, and of the prune at its end."""
    started = time.perf_counter()
    result = builder.build(service, source, config, revision, lambda _: None, nocache=nocache)
    elapsed = time.perf_counter() - started
    return elapsed, elapsed - result.seconds  # BuildResult.seconds ends before the prune


def bench_example(client: docker.DockerClient, name: str, repeat: int) -> dict[str, list[Timing]]:
    code_file = EXAMPLES[name]
    ours = Builder(client=client, runtimes=lineage_runtimes("slipway"))
    theirs = Builder(client=client, runtimes=lineage_runtimes("docker"))
    service = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    plain_repo = f"slipway-bench-docker/{name}"
    results: dict[str, list[Timing]] = {s: [] for s in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        source = Path(tmp) / name
        shutil.copytree(ROOT / "examples" / name, source)
        config = parse_apprunner_yaml((source / "apprunner.yaml").read_text())
        base_image = next(iter(ours.runtimes[config.runtime].versions.values()))
        count = 0
        try:
            for n in range(repeat):
                for scenario in SCENARIOS:
                    if scenario == "code":
                        change_code(source, code_file, n)
                    elif scenario == "deps":
                        change_deps(source, n, base_image)
                    nocache = scenario == "cold"
                    revision = f"{count:07x}" + "0" * 33
                    timing: Timing = {}
                    order = ("slipway", "docker") if n % 2 == 0 else ("docker", "slipway")
                    for who in order:
                        if who == "slipway":
                            timing["slipway"], timing["prune"] = slipway_build(
                                ours, service, source, config, revision, nocache
                            )
                        else:
                            labels = {LABEL_BUILD_SERVICE: service, LABEL_BUILD_REVISION: revision}
                            tag = f"{plain_repo}:{count}"
                            timing["docker"] = plain_build(
                                client, theirs, source, config, tag, nocache, labels
                            )
                    results[scenario].append(timing)
                    count += 1
                    print(
                        f"  {name} {scenario} #{n + 1}: slipway {timing['slipway']:.2f} s"
                        f" (prune {timing['prune']:.3f} s), docker {timing['docker']:.2f} s",
                        flush=True,
                    )
        finally:
            ours.remove_all(service)
            for image in client.images.list(name=plain_repo):
                for tag in image.tags:
                    client.images.remove(tag, force=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--example", action="append", choices=sorted(EXAMPLES))
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    client = docker.from_env()
    rows: list[tuple[str, str, Timing]] = []
    for name in args.example or list(EXAMPLES):
        results = bench_example(client, name, args.repeat)
        for scenario in SCENARIOS:
            medians = {
                key: statistics.median(t[key] for t in results[scenario])
                for key in ("slipway", "prune", "docker")
            }
            rows.append((name, scenario, medians))
    version = client.version().get("Version", "?")
    lines = [
        f"### Build times, {time.strftime('%Y-%m-%d')}: median of {args.repeat},"
        f" docker {version} classic builder, {os.cpu_count()} cores",
        "",
        "| example | build | slipway s | of which prune s | docker build s | slipway / docker |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, scenario, m in rows:
        lines.append(
            f"| {name} | {scenario} | {m['slipway']:.2f} | {m['prune']:.3f} | {m['docker']:.2f} |"
            f" {m['slipway'] / m['docker']:.2f}x |"
        )
    ours = sum(m["slipway"] for _, _, m in rows)
    theirs = sum(m["docker"] for _, _, m in rows)
    prune = sum(m["prune"] for _, _, m in rows)
    lines.append(f"| all | sum | {ours:.2f} | {prune:.3f} | {theirs:.2f} | {ours / theirs:.2f}x |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.record:
        record(
            "bench/build.py",
            table,
            "The managed-runtime examples built through `Builder.build` (context copy,\n"
            "render, log streaming, prune) and as a plain `docker build` of the same\n"
            "Dockerfile (labels included) and context, each in its own cache lineage.\n"
            "cold: no cache; code: a code-only change; deps: a new dependency pin\n"
            "(network-bound: pip/npm fetch through the TLS-intercepting proxy).\n"
            '"of which prune" is the removal of images past `keep_images` (5) at the'
            " end of\n`Builder.build`; here they are mostly older `nocache` builds whose"
            " layers are all\nunique, so it costs more than after ordinary deploys,"
            " which share cached layers.\n",
        )


if __name__ == "__main__":
    main()
