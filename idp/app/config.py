"""Configuration: built-in defaults, a ``conf/`` TOML file, ``SESAME_*`` environment
variables, then test overrides (DESIGN.md §7, §8.8).

``load_settings`` returns plain nested dicts checked once at start; ``Settings``
wraps them with typed accessors for the values the code reads on hot paths.
"""
from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from idp.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "SESAME_"


def _merge(base: dict, over: Mapping) -> dict:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _env_value(raw: str) -> Any:
    """Environment values are TOML literals when they parse as one, else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _coerce(name: str, raw: str, default: Any) -> Any:
    """An environment value, read as the type of the setting's default."""
    if isinstance(default, bool):
        if raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if isinstance(default, (int, float)):
        try:
            return type(default)(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if isinstance(default, list):
        value = _env_value(raw)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a TOML list such as [\"a\", \"b\"], got {raw!r}")
        return value
    if isinstance(default, str):
        value = _env_value(raw)  # a quoted TOML string is unquoted; anything else is taken as written
        return value if isinstance(value, str) else raw
    return _env_value(raw)


def _apply_env(data: dict, environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "SESAME_CONFIG":
            continue
        parts = name[len(ENV_PREFIX):].lower().split("_", 1)
        if len(parts) != 2 or parts[0] not in data:
            continue
        section, key = parts
        if key not in data[section]:
            raise ConfigError(f"{name}: no setting [{section}] {key}")
        data[section][key] = _coerce(name, raw, data[section][key])


def load_settings(path: str | os.PathLike | None = None, overrides: Mapping | None = None,
                  environ: Mapping[str, str] | None = None) -> "Settings":
    """Defaults < file (``path``, else $SESAME_CONFIG, else none) < environment < overrides."""
    environ = os.environ if environ is None else environ
    with DEFAULTS_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    path = path or environ.get("SESAME_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                _merge(data, tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    _apply_env(data, environ)
    if overrides:
        _merge(data, overrides)
    return Settings(data)


@dataclass(frozen=True)
class Settings:
    data: dict

    def section(self, name: str) -> dict:
        return self.data.get(name, {})

    def __getitem__(self, name: str) -> dict:
        return self.data[name]

    @property
    def base_url(self) -> str:
        return str(self.data["server"]["base_url"]).rstrip("/")

    @property
    def data_dir(self) -> Path:
        return Path(self.data["server"]["data_dir"]).expanduser().resolve()

    @property
    def demo(self) -> bool:
        return bool(self.data["server"]["demo"])

    @property
    def database_url(self) -> str:
        url = self.data["database"]["url"]
        return url or f"sqlite:///{self.data_dir / 'sesame.db'}"

    @property
    def entity_id(self) -> str:
        return self.data["saml"]["entity_id"] or f"{self.base_url}/saml/metadata"

    @property
    def languages(self) -> list[str]:
        return list(self.data["i18n"]["languages"])

    @property
    def enabled_keys(self) -> list[str]:
        return list(self.data["keys"]["enabled"])

    def key_settings(self) -> dict[str, dict]:
        return {k: v for k, v in self.data["keys"].items() if isinstance(v, dict)}

    def saml(self, key: str) -> Any:
        return self.data["saml"][key]
