"""apprunner.yaml parsing (the guide's examples, broken variants) and CodeConfigurationValues."""

from __future__ import annotations

import time
from textwrap import dedent

import botocore.session
import pytest

from slipway.builds import CodeConfig, SecretRef
from slipway.builds.config import (
    MAX_CONFIG_BYTES,
    RUNTIME_NAMES,
    ConfigFileError,
    from_api_values,
    parse_apprunner_yaml,
)
from slipway.errors import InvalidRequest

# --- the developer guide's examples, copied in ---------------------------------------

# "Archivo de configuración mínimo"; the Python chapter's "Archivo de configuración de
# Python" is the same file.
MINIMAL = """\
version: 1.0
runtime: python3
build:
  commands:
    build:
      - pip install pipenv
      - pipenv install
run:
  command: python app.py
"""

# "Archivo de configuración completo"; also the Python chapter's extended example. The
# guide wraps the pre-build command over two lines; the continuation is indented deeper
# than the list item's dash, so YAML folds it into one line. (The text as extracted from
# the PDF puts "-xz" in the dash's column, which is not valid YAML: see
# test_guide_wrapped_line_in_dash_column_is_invalid_yaml.)
COMPLETE = """\
version: 1.0
runtime: python3
build:
  commands:
    pre-build:
      - wget -c https://s3.amazonaws.com/DOC-EXAMPLE-BUCKET/test-lib.tar.gz -O - | tar
        -xz
    build:
      - pip install pipenv
      - pipenv install
    post-build:
      - python manage.py test
  env:
    - name: DJANGO_SETTINGS_MODULE
      value: "django_apprunner.settings"
    - name: MY_VAR_EXAMPLE
      value: "example"
run:
  runtime-version: 3.7.7
  command: pipenv run gunicorn django_apprunner.wsgi --log-file -
  network:
    port: 8000
    env: MY_APP_PORT
  env:
    - name: MY_VAR_EXAMPLE
      value: "example"
"""

# "Origen de aplicación de Python de extremo a extremo" (the python-hello app).
PYTHON_END_TO_END = """\
version: 1.0
runtime: python3
build:
  commands:
    build:
      - pip install -r requirements.txt
run:
  command: python server.py
"""

NODE_SIMPLE = """\
version: 1.0
runtime: nodejs12
build:
  commands:
    build:
      - npm install --production
run:
  command: node app.js
"""

# The guide's page break lost the indentation of the last lines; restored here.
NODE_EXTENDED = """\
version: 1.0
runtime: nodejs12
build:
  commands:
    pre-build:
      - npm install --only=dev
      - node test.js
    build:
      - npm install --production
    post-build:
      - node node_modules/ejs/postinstall.js
  env:
    - name: MY_VAR_EXAMPLE
      value: "example"
run:
  runtime-version: 12.18.4
  command: node app.js
  network:
    port: 8000
    env: APP_PORT
  env:
    - name: MY_VAR_EXAMPLE
      value: "example"
"""

NODE_GRUNT = """\
version: 1.0
runtime: nodejs12
build:
  commands:
    pre-build:
      - npm install grunt grunt-cli
      - npm install --only=dev
      - npm run build
    build:
      - npm install --production
run:
  runtime-version: 12.18.4
  command: node app.js
  network:
    port: 8000
    env: APP_PORT
"""

# The reference section's snippets ("Referencia del archivo de configuración"), joined.
REFERENCE = """\
version: 1.0
runtime: python3
build:
  commands:
    pre-build:
      - yum install openssl
    build:
      - pip install -r requirements.txt
    post-build:
      - python manage.py test
  env:
    - name: DJANGO_SETTINGS_MODULE
      value: "django_apprunner.settings"
    - name: MY_VAR_EXAMPLE
      value: "example"
run:
  runtime-version: 3.7
  command: python app.py
  network:
    port: 8000
    env: MY_APP_PORT
  env:
    - name: MY_VAR_EXAMPLE
      value: "example"
"""

GUIDE_EXAMPLES = {
    "minimal": MINIMAL,
    "complete": COMPLETE,
    "python-simple": MINIMAL,
    "python-extended": COMPLETE,
    "python-end-to-end": PYTHON_END_TO_END,
    "node-simple": NODE_SIMPLE,
    "node-extended": NODE_EXTENDED,
    "node-grunt": NODE_GRUNT,
    "reference": REFERENCE,
}


@pytest.mark.parametrize("name", GUIDE_EXAMPLES)
def test_every_guide_example_parses(name: str) -> None:
    config = parse_apprunner_yaml(GUIDE_EXAMPLES[name])
    assert config.runtime in ("python3", "nodejs12")
    assert config.build and config.command


def test_minimal_example_takes_the_defaults() -> None:
    assert parse_apprunner_yaml(MINIMAL) == CodeConfig(
        runtime="python3",
        build=("pip install pipenv", "pipenv install"),
        command="python app.py",
    )


def test_complete_example_every_key() -> None:
    config = parse_apprunner_yaml(COMPLETE)
    assert config == CodeConfig(
        runtime="python3",
        runtime_version="3.7.7",
        pre_build=(
            "wget -c https://s3.amazonaws.com/DOC-EXAMPLE-BUCKET/test-lib.tar.gz -O - | tar -xz",
        ),
        build=("pip install pipenv", "pipenv install"),
        post_build=("python manage.py test",),
        build_env={
            "DJANGO_SETTINGS_MODULE": "django_apprunner.settings",
            "MY_VAR_EXAMPLE": "example",
        },
        command="pipenv run gunicorn django_apprunner.wsgi --log-file -",
        port=8000,
        port_env="MY_APP_PORT",
        network=True,
        env={"MY_VAR_EXAMPLE": "example"},
    )
    assert isinstance(config.build, tuple) and isinstance(config.env, dict)


# The current guide's complete file (English edition, newer than the Spanish copy in
# shared/reference): every key, run.pre-run and run.secrets included, with its own
# "my-secret" name and the three reference forms.
CURRENT_COMPLETE = """\
version: 1.0
runtime: python311
build:
  commands:
    pre-build:
      - wget -c https://s3.amazonaws.com/DOC-EXAMPLE-BUCKET/test-lib.tar.gz -O - | tar -xz
    build:
      - pip3 install pipenv
      - pipenv install
    post-build:
      - python3 manage.py test
  env:
    - name: DJANGO_SETTINGS_MODULE
      value: "django_apprunner.settings"
    - name: MY_VAR_EXAMPLE
      value: "example"
run:
  runtime-version: 3.11
  pre-run:
    - pip3 install pipenv
    - pipenv install
    - python3 copy-global-files.py
  command: pipenv run gunicorn django_apprunner.wsgi --log-file -
  network:
    port: 8000
    env: MY_APP_PORT
  env:
    - name: MY_VAR_EXAMPLE
      value: "example"
  secrets:
    - name: my-secret
      value-from: "arn:aws:secretsmanager:us-east-1:123456789012:secret:\
testingstackAppRunnerConstr-kJFXde2ULKbT-S7t8xR:username::"
    - name: my-parameter
      value-from: "arn:aws:ssm:us-east-1:123456789012:parameter/parameter-name"
    - name: my-parameter-only-name
      value-from: "parameter-name"
"""


def test_current_guide_complete_example_every_key() -> None:
    config = parse_apprunner_yaml(CURRENT_COMPLETE)
    assert (config.runtime, config.runtime_version) == ("python311", "3.11")
    assert config.pre_run == (
        "pip3 install pipenv",
        "pipenv install",
        "python3 copy-global-files.py",
    )
    assert (config.port, config.port_env) == (8000, "MY_APP_PORT")
    assert [s.name for s in config.secrets] == [
        "my-secret",
        "my-parameter",
        "my-parameter-only-name",
    ]
    assert config.secrets[2].value_from == "parameter-name"


def test_node_examples() -> None:
    extended = parse_apprunner_yaml(NODE_EXTENDED)
    assert extended.runtime == "nodejs12" and extended.runtime_version == "12.18.4"
    assert extended.pre_build == ("npm install --only=dev", "node test.js")
    assert extended.post_build == ("node node_modules/ejs/postinstall.js",)
    assert (extended.port, extended.port_env) == (8000, "APP_PORT")
    assert extended.env == {"MY_VAR_EXAMPLE": "example"} == extended.build_env
    grunt = parse_apprunner_yaml(NODE_GRUNT)
    assert grunt.pre_build[-1] == "npm run build" and grunt.env == {}


def test_reference_runtime_version_float_keeps_its_text() -> None:
    assert parse_apprunner_yaml(REFERENCE).runtime_version == "3.7"


def test_guide_wrapped_line_in_dash_column_is_invalid_yaml() -> None:
    verbatim = COMPLETE.replace("\n        -xz\n", "\n      -xz\n")
    err = _error(verbatim)
    assert err.line == 8  # where the scanner gave up; the message names line 7 too
    assert "invalid YAML" in str(err) and "(line 7)" in str(err)


def test_node_tip_fragment_is_not_a_whole_file() -> None:
    # The Node.js chapter's tip shows only "run: command: npm start".
    err = _error("run:\n  command: npm start\n")
    assert (err.line, err.key) == (1, "version")


# --- helpers ----------------------------------------------------------------------


def _error(text: str | bytes, filename: str = "apprunner.yaml") -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        parse_apprunner_yaml(text, filename)
    return info.value


def _file(run: str = "  command: python app.py\n", *, top: str = "", build: str = "") -> str:
    """A valid python3 file with ``run``'s body (and optional build/top lines) swapped in."""
    text = "version: 1.0\nruntime: python3\n" + top
    if build:
        text += "build:\n" + build
    return text + "run:\n" + run


def _assert_error(text: str, line: int | None, key: str | None, *words: str) -> ConfigFileError:
    err = _error(text)
    assert (err.line, err.key) == (line, key), str(err)
    message = str(err)
    prefix = "apprunner.yaml" + (f" line {line}" if line else "") + (f", key {key}" if key else "")
    assert message.startswith(prefix + ": "), message
    for word in words:
        assert word in message, message
    return err


def test_error_is_an_invalid_request_with_file_line_and_key() -> None:
    err = _error(_file("  command: x\n  network:\n    port: abc\n"), filename="svc/apprunner.yaml")
    assert isinstance(err, InvalidRequest) and err.code == "InvalidRequestException"
    assert (err.filename, err.line, err.key) == ("svc/apprunner.yaml", 6, "run.network.port")
    assert str(err) == (
        "svc/apprunner.yaml line 6, key run.network.port: 'abc' is not a port number (1-65535)"
    )


# --- unknown keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "suggestion"),
    [
        ("version: 1.0\nruntme: python3\nrun:\n  command: x\n", 2, "runtme", "'runtime'"),
        (_file("  comand: python app.py\n"), 4, "run.comand", "'command'"),
        (_file("  command: x\n  network:\n    prot: 80\n"), 6, "run.network.prot", "'port'"),
        (
            _file(build="  commands:\n    prebuild:\n      - a\n    build:\n      - b\n"),
            5,
            "build.commands.prebuild",
            "'pre-build'",
        ),
        (
            _file("  command: x\n  env:\n    - name: A\n      vaule: b\n"),
            7,
            "run.env[0].vaule",
            "'value'",
        ),
        (_file(top="Version: 1.0\n"), 3, "Version", "'version'"),
    ],
)
def test_unknown_key_suggests_the_closest(text: str, line: int, key: str, suggestion: str) -> None:
    _assert_error(text, line, key, "unknown key", f"did you mean {suggestion}?")


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    _assert_error(_file(top="services: []\n"), 3, "services", "version, runtime, build, run")


# --- wrong types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (_file("  - command: x\n"), 4, "run", ["expected a mapping, got a list"]),
        ("version: 1.0\nruntime: python3\nrun:\n", 3, "run", ["got nothing"]),
        (
            _file("  command: [python, app.py]\n"),
            4,
            "run.command",
            ["expected a string, got a list"],
        ),
        ("version: 1.0\nruntime: [python3]\nrun: {command: x}\n", 2, "runtime", ["got a list"]),
        (
            _file(build="  commands:\n    build:\n      - echo a: b\n"),
            6,
            "build.commands.build[0]",
            ["got a mapping", "quote the value if it contains ': '"],
        ),
        (
            _file(build="  commands:\n    build: [a]\n  env: {A: b}\n"),
            6,
            "build.env",
            ["expected a list of name/value pairs"],
        ),
        (_file("  command: x\n  env:\n    - A=b\n"), 6, "run.env[0]", ["expected a mapping"]),
        (
            _file("  command: x\n  env:\n    - name: A\n      value:\n"),
            7,
            "run.env[0].value",
            ['write "" for an empty string'],
        ),
        (
            _file("  command: !!binary aGVsbG8=\n"),
            4,
            "run.command",
            ["tag:yaml.org,2002:binary is not allowed"],
        ),
        (
            _file("  command: !!python/object/apply:os.system [id]\n"),
            4,
            "run.command",
            ["expected a string, got a list"],
        ),
        (_file("  command: x\n  network: 8000\n"), 5, "run.network", ["expected a mapping"]),
        (_file('  command: "  "\n'), 4, "run.command", ["must not be empty"]),
    ],
)
def test_wrong_type(text: str, line: int, key: str, words: list[str]) -> None:
    _assert_error(text, line, key, *words)


def test_single_string_commands_are_refused_with_the_list_form() -> None:
    err = _assert_error(
        _file(build="  commands:\n    build: pip install -r requirements.txt\n"),
        5,
        "build.commands.build",
        "expected a list of commands",
    )
    assert "- pip install -r requirements.txt" in str(err)
    _assert_error(_file("  command: x\n  pre-run: ./migrate\n"), 5, "run.pre-run", "list item")


def test_a_command_is_one_shell_line() -> None:
    text = _file(
        build="  commands:\n    build:\n      - |\n        pip install a\n        pip install b\n"
    )
    _assert_error(text, 6, "build.commands.build[0]", "one shell line")
    folded = _file(build="  commands:\n    build:\n      - >\n        pip install\n        flask\n")
    assert parse_apprunner_yaml(folded).build == ("pip install flask",)


def test_build_commands_build_needs_a_command() -> None:
    _assert_error(
        _file(build="  commands:\n    build: []\n"), 5, "build.commands.build", "at least one"
    )


# --- missing keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("runtime: python3\nrun:\n  command: x\n", 1, "version"),
        ("# a comment\nversion: 1.0\nrun:\n  command: x\n", 2, "runtime"),
        ("version: 1.0\nruntime: python3\nbuild:\n  commands:\n    build: [a]\n", 1, "run"),
        (_file("  network:\n    port: 8000\n"), 3, "run.command"),
        (_file(build="  env: []\n"), 3, "build.commands"),
        (_file(build="  commands:\n    pre-build: [a]\n"), 4, "build.commands.build"),
        (_file("  command: x\n  env:\n    - name: A\n"), 6, "run.env[0].value"),
        (_file("  command: x\n  secrets:\n    - name: A\n"), 6, "run.secrets[0].value-from"),
    ],
)
def test_missing_required_key(text: str, line: int, key: str) -> None:
    _assert_error(text, line, key, f"missing required key '{key.rsplit('.', 1)[-1]}'")


def test_nodejs_without_run_command_means_npm_start() -> None:
    config = parse_apprunner_yaml(
        "version: 1.0\nruntime: nodejs18\nrun:\n  network:\n    port: 3000\n"
    )
    assert config.command is None and config.port == 3000
    _assert_error(
        "version: 1.0\nruntime: python311\nrun:\n  runtime-version: 3.11\n", 3, "run.command"
    )


def test_build_section_is_optional() -> None:
    config = parse_apprunner_yaml(
        "version: 1.0\nruntime: python311\nrun:\n  command: python app.py\n"
    )
    assert config.build == config.pre_build == config.post_build == ()
    assert config.port == 8080 and config.runtime_version is None


# --- ports, runtimes, versions ----------------------------------------------------------


@pytest.mark.parametrize(
    "port", ["abc", "0", "65536", "8000.5", "-1", "0x1f40", "010", "[80]", "''"]
)
def test_bad_port(port: str) -> None:
    text = _file(f"  command: x\n  network:\n    port: {port}\n")
    _assert_error(text, 6, "run.network.port", "is not a port number (1-65535)")


@pytest.mark.parametrize(("port", "number"), [("1", 1), ("65535", 65535), ('"8000"', 8000)])
def test_good_port(port: str, number: int) -> None:
    assert (
        parse_apprunner_yaml(_file(f"  command: x\n  network:\n    port: {port}\n")).port == number
    )


def test_unknown_runtime_lists_the_known_names() -> None:
    err = _assert_error(
        "version: 1.0\nruntime: python2\nrun:\n  command: x\n", 2, "runtime", "unknown runtime"
    )
    for name in ("python3", "python311", "nodejs22", "corretto11", "go1", "dotnet6", "ruby31"):
        assert name in str(err)
    _assert_error(
        "version: 1.0\nruntime: pyhton3\nrun:\n  command: x\n",
        2,
        "runtime",
        "did you mean 'python3'?",
    )


@pytest.mark.parametrize("written", ["Python3", "PYTHON3", "NodeJS22", " go1 "])
def test_runtime_names_match_without_regard_to_case(written: str) -> None:
    """The guide's runtime tables write "Python3", its examples "python3": App Runner
    reads both; slipway keeps the lowercase name."""
    text = f"version: 1.0\nruntime: {written}\nrun:\n  command: x\n"
    assert parse_apprunner_yaml(text).runtime == written.strip().lower()


def test_api_names_with_app_runner_rules_are_accepted() -> None:
    config = from_api_values(
        {
            "Runtime": "NODEJS_18",
            "RuntimeEnvironmentVariables": {"my-var": "x"},
            "RuntimeEnvironmentSecrets": {
                "my-secret": "arn:aws:ssm:us-east-1:123456789012:parameter/p"
            },
        }
    )
    assert config.env == {"my-var": "x"} and config.secrets[0].name == "my-secret"


@pytest.mark.parametrize(
    "network", ["  network:\n", "  network: ~\n", "  network: null\n", "  network:\n  env:\n"]
)
def test_null_sections_are_absent(network: str) -> None:
    """``network:`` with nothing under it is as if not written (port 8080, PORT only)."""
    config = parse_apprunner_yaml(_file("  command: x\n" + network))
    assert (config.port, config.port_env, dict(config.env)) == (8080, None, {})


def test_null_network_keys_are_absent() -> None:
    config = parse_apprunner_yaml(_file("  command: x\n  network:\n    port:\n    env:\n"))
    assert (config.port, config.port_env) == (8080, None)


def test_a_null_required_key_is_still_missing() -> None:
    _assert_error(_file("  command:\n"), 4, "run.command", "expected a string, got nothing")


@pytest.mark.parametrize("runtime", sorted(set(RUNTIME_NAMES.values())))
def test_every_known_runtime_is_accepted(runtime: str) -> None:
    text = f"version: 1.0\nruntime: {runtime}\nrun:\n  command: ./start\n"
    assert parse_apprunner_yaml(text).runtime == runtime


@pytest.mark.parametrize("version", ["1.0", '"1.0"', "'1.0'", "1"])
def test_version_one(version: str) -> None:
    assert parse_apprunner_yaml(f"version: {version}\nruntime: python3\nrun:\n  command: x\n")


@pytest.mark.parametrize("version", ["2.0", "1.1", "v1", "[1.0]"])
def test_unsupported_version(version: str) -> None:
    text = f"version: {version}\nruntime: python3\nrun:\n  command: x\n"
    _assert_error(text, 1, "version", "unsupported version", "use 1.0")


@pytest.mark.parametrize(
    ("written", "kept"),
    [("3.10", "3.10"), ("3.7", "3.7"), ("3.11.2", "3.11.2"), ("12", "12"), ('"3.10"', "3.10")],
)
def test_runtime_version_keeps_its_literal_text(written: str, kept: str) -> None:
    config = parse_apprunner_yaml(_file(f"  runtime-version: {written}\n  command: x\n"))
    assert config.runtime_version == kept


@pytest.mark.parametrize("written", ["latest", "3.x", "3.11.2.1", "v3"])
def test_bad_runtime_version(written: str) -> None:
    text = _file(f"  runtime-version: {written}\n  command: x\n")
    _assert_error(text, 4, "run.runtime-version", "major[.minor[.patch]]")


# --- environment variables and secrets ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        (
            _file(build="  commands:\n    build: [a]\n  env:\n    - name: A B\n      value: c\n"),
            7,
            "build.env[0].name",
        ),
        (_file("  command: x\n  network:\n    env: APP.PORT\n"), 6, "run.network.env"),
    ],
)
def test_build_time_names_follow_the_shell(text: str, line: int, key: str) -> None:
    """build.env and run.network.env are read by the build's shell and Dockerfile."""
    _assert_error(text, line, key, "is not an environment variable name")


def test_run_names_follow_app_runner_not_a_shell() -> None:
    """The configuration-file reference's own example: ``name: my-secret`` reaches the
    app's environment as ``my-secret``; run.env names follow the same rule."""
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:testing-AbCdEf:username::"
    text = _file(
        "  command: x\n  env:\n    - {name: 1ABC, value: a}\n    - {name: my.var, value: b}\n"
        f'  secrets:\n    - name: my-secret\n      value-from: "{arn}"\n'
        "    - name: my-parameter\n"
        "      value-from: arn:aws:ssm:us-east-1:123456789012:parameter/parameter-name\n"
    )
    config = parse_apprunner_yaml(text)
    assert config.env == {"1ABC": "a", "my.var": "b"}
    assert [s.name for s in config.secrets] == ["my-secret", "my-parameter"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ('"A=B"', "holds '='"),
        ('"A\\tB"', "control character"),
        ('""', "cannot be empty"),
        ("AWSAPPRUNNER_X", "reserved by App Runner"),
        ("awsapprunnerX", "reserved by App Runner"),
    ],
)
def test_run_names_an_environment_cannot_carry(name: str, words: str) -> None:
    env = _file(f"  command: x\n  env:\n    - name: {name}\n      value: b\n")
    _assert_error(env, 6, "run.env[0].name", words)
    secret = _file(f"  command: x\n  secrets:\n    - name: {name}\n      value-from: s\n")
    _assert_error(secret, 6, "run.secrets[0].name", words)


def test_secret_name_length_is_the_models() -> None:
    ok = _file("  command: x\n  secrets:\n    - name: " + "S" * 2048 + "\n      value-from: s\n")
    assert parse_apprunner_yaml(ok).secrets[0].name == "S" * 2048
    long = _file("  command: x\n  secrets:\n    - name: " + "S" * 2049 + "\n      value-from: s\n")
    _assert_error(long, 6, "run.secrets[0].name", "at most 2048 characters")


def test_env_values_keep_their_literal_text() -> None:
    text = _file(
        "  command: x\n  env:\n"
        "    - {name: DEBUG, value: true}\n"
        "    - {name: MODE, value: 010}\n"
        "    - {name: RATIO, value: 1.50}\n"
        '    - {name: EMPTY, value: ""}\n'
        "    - name: PEM\n      value: |\n        line one\n        line two\n"
    )
    env = parse_apprunner_yaml(text).env
    assert env == {
        "DEBUG": "true",
        "MODE": "010",
        "RATIO": "1.50",
        "EMPTY": "",
        "PEM": "line one\nline two\n",
    }


def test_secrets() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    text = _file(f"  command: x\n  secrets:\n    - name: DB_URL\n      value-from: {arn}\n")
    assert parse_apprunner_yaml(text).secrets == (SecretRef("DB_URL", arn),)


def test_a_malformed_secret_reference_names_its_line() -> None:
    text = _file("  command: x\n  secrets:\n    - name: DB_URL\n      value-from: arn:aws:s3:::b\n")
    _assert_error(text, 6, "run.secrets[0].value-from", "is not an ARN of the form")


def test_duplicate_env_names() -> None:
    env = "  command: x\n  env:\n    - {name: A, value: b}\n    - {name: A, value: c}\n"
    _assert_error(_file(env), 7, "run.env[1].name", "duplicate name 'A' (line 6)")
    both = (
        "  command: x\n  env:\n    - {name: A, value: b}\n"
        "  secrets:\n    - {name: A, value-from: s}\n"
    )
    _assert_error(_file(both), 8, "run.secrets[0].name", "already a run.env variable (line 6)")


# --- duplicate keys, empty files, not YAML --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        ("version: 1.0\nruntime: python3\nruntime: nodejs18\nrun: {command: x}\n", 3, "runtime", 2),
        (_file("  command: a\n  command: b\n"), 5, "run.command", 4),
        (
            _file(build="  commands:\n    build: [a]\n    build: [b]\n"),
            6,
            "build.commands.build",
            5,
        ),
        (_file() + "run:\n  command: y\n", 5, "run", 3),
    ],
)
def test_duplicate_keys(text: str, line: int, key: str, first: int) -> None:
    _assert_error(text, line, key, f"duplicate key '{key.rsplit('.', 1)[-1]}'", f"line {first})")


@pytest.mark.parametrize("text", ["", "   \n\n", b"", "# only a comment\n"])
def test_empty_file(text: str | bytes) -> None:
    err = _error(text)
    assert err.line is None and str(err).startswith("apprunner.yaml: the file is empty")


@pytest.mark.parametrize(("text", "what"), [("- a\n- b\n", "a list"), ("python3\n", "'python3'")])
def test_top_is_not_a_mapping(text: str, what: str) -> None:
    _assert_error(text, 1, None, f"expected a mapping of keys at the top, got {what}")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1.0\nruntime: python3\nrun:\n  command: 'python app.py\n", 5),
        ("version: 1.0\nruntime: python3\nrun:\n\tcommand: x\n", 4),
        ("version: 1.0\nruntime: python3\nrun: {command: x\n", 4),
        ("version: 1.0\n---\nruntime: python3\n", 2),
        ("version: 1.0\nruntime: python3\x07\n", 2),
    ],
)
def test_invalid_yaml_names_the_line(text: str, line: int) -> None:
    _assert_error(text, line, None, "invalid YAML")


def test_bytes_input() -> None:
    assert parse_apprunner_yaml(MINIMAL.encode()) == parse_apprunner_yaml(MINIMAL)
    assert parse_apprunner_yaml(b"\xef\xbb\xbf" + MINIMAL.encode()).runtime == "python3"
    err = _error(b"version: 1.0\nruntime: python3\nrun:\n  command: caf\xe9\n")
    assert err.line == 4 and "not UTF-8" in str(err)


# --- safety ---------------------------------------------------------------------------------

BILLION_LAUGHS = dedent(
    """\
    version: 1.0
    runtime: python3
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    run:
      command: *i
    """
)


def test_yaml_bomb_is_refused_quickly() -> None:
    start = time.monotonic()
    err = _error(BILLION_LAUGHS)
    assert time.monotonic() - start < 1.0
    assert err.line == 3 and "anchors and aliases" in str(err)


def test_any_anchor_or_alias_is_refused() -> None:
    anchored = "version: 1.0\nruntime: python3\nrun: &r\n  command: x\n"
    _assert_error(anchored, 3, None, "anchors and aliases")
    merge = (
        "version: 1.0\nruntime: python3\nrun:\n  command: x\n  env:\n"
        "    - &v {name: A, value: b}\n    - *v\n"
    )
    _assert_error(merge, 6, None, "anchors and aliases")


def test_deep_nesting_is_refused() -> None:
    err = _error("version: 1.0\nrun: " + "[" * 5000 + "]" * 5000 + "\n")
    assert err.line == 2 and "nested deeper" in str(err)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_ten_megabyte_file_is_refused_before_parsing(as_bytes: bool) -> None:
    text = MINIMAL + "# padding\n" * (1024 * 1024)
    start = time.monotonic()
    err = _error(text.encode() if as_bytes else text)
    assert time.monotonic() - start < 1.0
    assert err.line is None and f"the limit is {MAX_CONFIG_BYTES} bytes" in str(err)


def test_a_file_just_under_the_limit_parses() -> None:
    text = MINIMAL + "#" * (MAX_CONFIG_BYTES - len(MINIMAL) - 1) + "\n"
    assert len(text.encode()) == MAX_CONFIG_BYTES
    assert parse_apprunner_yaml(text).command == "python app.py"


# --- the API's CodeConfigurationValues ----------------------------------------------------

API = "SourceConfiguration.CodeRepository.CodeConfiguration.CodeConfigurationValues"


def test_runtime_names_cover_botocores_enum() -> None:
    model = botocore.session.get_session().get_service_model("apprunner")
    enum = model.shape_for("CodeConfigurationValues").members["Runtime"].enum
    assert list(RUNTIME_NAMES) == list(enum)
    assert RUNTIME_NAMES["PYTHON_311"] == "python311" and RUNTIME_NAMES["GO_1"] == "go1"


def test_from_api_values_all_members() -> None:
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/db"
    config = from_api_values(
        {
            "Runtime": "PYTHON_311",
            "BuildCommand": "pip install -r requirements.txt",
            "StartCommand": "python server.py",
            "Port": "8000",
            "RuntimeEnvironmentVariables": {"NAME": "world"},
            "RuntimeEnvironmentSecrets": {"DB_URL": arn},
        }
    )
    assert config == CodeConfig(
        runtime="python311",
        build=("pip install -r requirements.txt",),
        command="python server.py",
        port=8000,
        env={"NAME": "world"},
        secrets=(SecretRef("DB_URL", arn),),
    )


def test_from_api_values_defaults() -> None:
    config = from_api_values({"Runtime": "NODEJS_18"})
    assert config == CodeConfig(runtime="nodejs18")
    assert config.port == 8080 and config.command is None and config.build == ()


def test_from_api_values_start_command_required_except_node() -> None:
    with pytest.raises(
        InvalidRequest, match=rf"^{API}\.StartCommand: required for runtime PYTHON_3"
    ):
        from_api_values({"Runtime": "PYTHON_3", "BuildCommand": "pip install flask"})


@pytest.mark.parametrize("port", ["abc", "0", "65536", "", " ", " 80", "80a", 8080])
def test_from_api_values_bad_port(port: object) -> None:
    with pytest.raises(InvalidRequest, match=rf"^{API}\.Port: .* is not a port number"):
        from_api_values({"Runtime": "NODEJS_18", "Port": port})


@pytest.mark.parametrize(
    ("values", "member"),
    [
        ({"Runtime": "PYTHON_2"}, "Runtime"),
        (
            {"Runtime": "NODEJS_18", "RuntimeEnvironmentVariables": {"MY=VAR": "x"}},
            "RuntimeEnvironmentVariables",
        ),
        (
            {"Runtime": "NODEJS_18", "RuntimeEnvironmentSecrets": {"AWSAPPRUNNER_X": "arn"}},
            "RuntimeEnvironmentSecrets",
        ),
        (
            {
                "Runtime": "NODEJS_18",
                "RuntimeEnvironmentVariables": {"A": "x"},
                "RuntimeEnvironmentSecrets": {"A": "arn"},
            },
            "RuntimeEnvironmentSecrets",
        ),
    ],
)
def test_from_api_values_bad_members(values: dict, member: str) -> None:
    with pytest.raises(InvalidRequest, match=rf"^{API}\.{member}: "):
        from_api_values(values)
