"""Settings from the YAML file and the environment: bools such as app_logs, and settings
of earlier versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.config import load_settings
from slipway.errors import InvalidRequest


def settings(tmp_path: Path, yaml_text: str = "", **environ: str):
    config = tmp_path / "slipway.yaml"
    config.write_text(yaml_text)
    return load_settings(config, environ=environ)


def test_app_logs_default_on(tmp_path: Path) -> None:
    assert settings(tmp_path).app_logs is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "off", " OFF "])
def test_app_logs_off_from_environment(tmp_path: Path, text: str) -> None:
    assert settings(tmp_path, SLIPWAY_APP_LOGS=text).app_logs is False


@pytest.mark.parametrize("text", ["true", "1", "yes", "on"])
def test_app_logs_on_from_environment(tmp_path: Path, text: str) -> None:
    assert settings(tmp_path, SLIPWAY_APP_LOGS=text).app_logs is True


def test_app_logs_from_yaml(tmp_path: Path) -> None:
    assert settings(tmp_path, "app_logs: false\n").app_logs is False
    assert settings(tmp_path, "app_logs: true\n").app_logs is True
    assert settings(tmp_path, "app_logs: false\n", SLIPWAY_APP_LOGS="true").app_logs is True


def test_app_logs_rejects_other_values(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="app_logs"):
        settings(tmp_path, SLIPWAY_APP_LOGS="maybe")
    with pytest.raises(InvalidRequest, match="app_logs"):
        settings(tmp_path, "app_logs: [1]\n")


def test_a_retired_setting_is_ignored_with_a_warning(tmp_path: Path, caplog) -> None:
    loaded = settings(tmp_path, "instance_host: 127.0.0.1\nhttp_port: 8000\n")
    assert loaded.http_port == 8000
    assert "instance_host" in caplog.text and "ignored" in caplog.text
    with pytest.raises(InvalidRequest, match="unknown setting 'no_such'"):
        settings(tmp_path, "no_such: 1\n")
