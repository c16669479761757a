"""Environment variable names: App Runner's rule for the app's environment, a shell's
for what a build's shell reads.

App Runner passes each ``run.env`` / ``run.secrets`` name (and each key of the API's
``RuntimeEnvironmentVariables`` / ``RuntimeEnvironmentSecrets``) to the instance as is:
the model allows any 1 to 51200 (variables) or 2048 (secrets) characters, and the
configuration-file reference's own example names a secret ``my-secret``, which the app
then reads as ``os.environ["my-secret"]``. What an environment cannot carry is refused:
``=`` (it ends the name in ``NAME=value``), NUL and other control characters; and, as
App Runner says of its environment variables, names starting with ``AWSAPPRUNNER`` are
reserved for the system.

Build-time names (``build.env``, ``run.network.env``) become Dockerfile ``ARG``/``ENV``
lines that the build's shell expands, so they keep the shell's rule.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SECRET_NAME", "MAX_VARIABLE_NAME", "SHELL_NAME", "SHELL_RULE", "env_name_problem"]

MAX_VARIABLE_NAME = 51200  # botocore: RuntimeEnvironmentVariablesKey
MAX_SECRET_NAME = 2048  # botocore: RuntimeEnvironmentSecretsName
RESERVED_PREFIX = "AWSAPPRUNNER"
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHELL_RULE = "(letters, digits and _, not starting with a digit)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def env_name_problem(name: str, *, limit: int = MAX_VARIABLE_NAME) -> str | None:
    """What makes ``name`` unusable as an instance's environment variable, or None."""
    if not name:
        return "an environment variable name cannot be empty"
    if len(name) > limit:
        return f"an environment variable name is at most {limit} characters"
    if "=" in name:
        return f"{name!r} holds '=', which no environment variable name can"
    if _CONTROL.search(name):
        return f"{name!r} holds a control character, which no environment variable name can"
    if name.upper().startswith(RESERVED_PREFIX):
        return f"{name!r}: names starting with {RESERVED_PREFIX} are reserved by App Runner"
    return None
