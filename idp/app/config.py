"""Configuration: built-in defaults, a ``conf/`` TOML file, ``SESAME_*`` environment
variables, then test overrides (DESIGN.md §7, §8.8).

``load_settings`` returns plain nested dicts checked once at start; ``Settings``
wraps them with typed accessors for the values the code reads on hot paths.
A file or an environment variable may only name settings of ``defaults.toml``
(a typo fails the start instead of leaving the default in force); the
``[keys.<id>]`` tables are checked by each key's typed settings instead
(``adapters/settings.py``), since only the key knows its settings.
"""
from __future__ import annotations

import copy
import difflib
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


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_known(loaded: Mapping, defaults: Mapping, source: str) -> None:
    """Refuse a section or setting of ``loaded`` (the file ``source``) that ``defaults`` lacks.

    ``[keys.<id>]`` tables are not looked into: each key's typed settings refuse
    what it does not know, at start (``adapters/settings.py``)."""
    for section, values in loaded.items():
        known = defaults.get(section)
        if not isinstance(values, Mapping) and not isinstance(known, Mapping):
            raise ConfigError(f"{source}: {section} is outside any [section]")
        if not isinstance(known, Mapping):
            raise ConfigError(f"{source}: unknown section [{section}]{_did_you_mean(section, defaults)}; "
                              f"known: {', '.join(sorted(defaults))}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table, got {values!r}")
        for key, value in values.items():
            if section == "keys" and isinstance(value, Mapping):
                continue  # [keys.<id>]: the key's own Settings check it
            if key not in known:
                names = sorted(k for k in known if not isinstance(known[k], Mapping))
                raise ConfigError(f"{source}: unknown setting [{section}] {key}{_did_you_mean(key, names)}; "
                                  f"known: {', '.join(names)}")
            if isinstance(known[key], Mapping) != isinstance(value, Mapping):
                raise ConfigError(f"{source}: [{section}] {key} must be "
                                  f"{'a table' if isinstance(known[key], Mapping) else 'a value, not a table'}")


def _apply_key_env(keys: dict, name: str, rest: str, raw: str) -> None:
    """``SESAME_KEYS_<ID>_<SETTING>``: one setting of the table ``[keys.<id>]``.

    Ids may contain underscores (``standin_code``): the longest id of a known
    table or of ``[keys] enabled`` that ``rest`` starts with wins.  A setting
    the table has is read as the type of its value; another one as a TOML
    literal, and the key's typed settings check it at start."""
    tables = {k for k, v in keys.items() if isinstance(v, dict)}
    tables |= {k for k in keys.get("enabled", []) if isinstance(k, str)}
    for table in sorted(tables, key=len, reverse=True):
        setting = rest[len(table) + 1:]
        if rest.startswith(table + "_") and setting:
            values = keys.setdefault(table, {})
            values[setting] = _coerce(name, raw, values[setting]) if setting in values else _env_value(raw)
            return
    raise ConfigError(f"{name}: no setting [keys] {rest} nor a key table [keys.<id>] it belongs to; "
                      f"key tables: {', '.join(sorted(tables)) or 'none'}")


def _apply_env(data: dict, environ: Mapping[str, str]) -> None:
    nested = []
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "SESAME_CONFIG":
            continue
        parts = name[len(ENV_PREFIX):].lower().split("_", 1)
        if len(parts) != 2 or parts[0] not in data:
            continue
        section, key = parts
        if section == "keys" and isinstance(data[section].get(key, {}), dict):  # not [keys] enabled
            nested.append((name, key, raw))
            continue
        if key not in data[section]:
            raise ConfigError(f"{name}: no setting [{section}] {key}{_did_you_mean(key, data[section])}")
        data[section][key] = _coerce(name, raw, data[section][key])
    # After the plain settings, so that SESAME_KEYS_ENABLED names the key tables these may fill.
    for name, rest, raw in sorted(nested):
        _apply_key_env(data["keys"], name, rest, raw)


def load_settings(path: str | os.PathLike | None = None, overrides: Mapping | None = None,
                  environ: Mapping[str, str] | None = None) -> "Settings":
    """Defaults < file (``path``, else $SESAME_CONFIG, else none) < environment < overrides.

    ``ConfigError`` when the file cannot be read, or names a section or setting
    the defaults do not have (``[keys.<id>]`` tables aside), or when a
    ``SESAME_<SECTION>_<KEY>`` / ``SESAME_KEYS_<ID>_<SETTING>`` variable names
    none or does not fit the setting's type.  Overrides (tests) are not checked."""
    environ = os.environ if environ is None else environ
    with DEFAULTS_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    path = path or environ.get("SESAME_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                loaded = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
        _check_known(loaded, data, str(path))
        _merge(data, loaded)
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
