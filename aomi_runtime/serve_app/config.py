"""The App configuration file (YAML, TOML or JSON): read and checked once, at start.

    apps:
      - name: default
        public: true
      - name: research
        public: false
        tools: [time_now, long_task]
        models:
          - {label: GPT-4o mini, slug: gpt-4o-mini, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}

A wrong file stops the start with a message naming the file, the App and the field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..agent.apps import AppSpec
from ..agent.errors import ConfigError, InvalidInput


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: is not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {exc}") from None


def _where(path: Path, index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"{path}: App {name!r}" if isinstance(name, str) else f"{path}: App #{index + 1}"


def load_apps(path: Path, environ: Mapping[str, str]) -> tuple[AppSpec, ...]:
    """The Apps a configuration file declares, checked: fields, unique names, known tools, provider keys set."""
    data = _parse(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("apps"), list) or not data["apps"]:
        raise ConfigError(f"{path}: expected a top-level 'apps' list with at least one App.")
    unknown = set(data) - {"apps"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level field(s) {sorted(unknown)}; only 'apps' is read.")
    specs: list[AppSpec] = []
    for index, raw in enumerate(data["apps"]):
        where = _where(path, index, raw)
        try:
            spec = AppSpec.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"field '{'.'.join(str(p) for p in e['loc']) or '(the App)'}': {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{where}: {problems}") from None
        if any(s.name == spec.name for s in specs):
            raise ConfigError(f"{where}: field 'name': another App is already named {spec.name!r}.")
        try:
            spec.tool_registry  # noqa: B018  # every tool found, or the start stops here
        except InvalidInput as exc:
            raise ConfigError(f"{where}: field 'tools': {exc}") from None
        for i, model in enumerate(spec.models):
            if model.api_key_env and not environ.get(model.api_key_env):
                raise ConfigError(
                    f"{where}: field 'models.{i}.api_key_env': the environment variable {model.api_key_env} is not set."
                )
        specs.append(spec)
    return tuple(specs)
