"""The app_logs setting: on by default, turned off from the YAML file or the environment."""

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
