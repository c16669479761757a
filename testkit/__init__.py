"""What the tests and the benchmarks share: the real parts they start (``harness``: an
agent, Caddy, a registry; ``images``: the offline busybox image) and the servers that
stand in for outside services (``gitserver``, ``fakegithub``, ``dnsserver``).

Beside ``tests/`` and ``bench/``, below both: pytest puts the repository root on the
path (``pythonpath`` in pyproject.toml), ``bench/common.py`` does the same for the
benchmarks."""
