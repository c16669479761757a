"""Setting values as they come from YAML or the environment (text), made into the type
each setting declares; a value that is not one names its setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InvalidRequest


def coerce(name: str, typ: Any, value: Any) -> Any:
    typ = str(typ)
    if name == "notify_targets":  # a list of mappings (YAML), or JSON text (environment)
        from .observe.notify import parse_config_targets

        return tuple(parse_config_targets(value))
    try:
        if typ == "Path":
            return Path(str(value))
        if typ == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(value)
            return text in ("true", "1", "yes", "on")
        if typ == "int":
            return int(value)
        if typ == "float":
            return float(value)
        if typ.startswith("dict"):
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise TypeError(value)
            return {str(k): str(v) for k, v in value.items()}
        if typ.startswith("tuple"):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            return tuple(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"setting {name}: {value!r} is not a valid {typ}") from exc
