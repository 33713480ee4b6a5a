"""Apps: the configuration that declares one (picklable, sent to every actor) and the App it builds."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .demo_tools import DEMO_TOOLS
from .errors import InvalidInput, MessageTooLarge, ModelUnavailable
from .logs import log_failure
from .protocols import ModelProvider
from .secrets import ClientKeyProvider, ClientSecrets, SecretSource
from .tools import ToolRegistry

log = logging.getLogger(__name__)

APP_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DEFAULT_APP = "default"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Use the tools you are given when they help."


class ModelSpec(BaseModel):
    """One model an App offers: shown to users by `label`, chosen by `slug`.

    `provider` is `scripted` (offline), `openai` (any OpenAI-compatible chat completions API: OpenAI, vLLM,
    Ollama, LiteLLM, ...) or `anthropic` (the Messages API). The key is read from the environment variable
    `api_key_env`, never from the file. `options` go to the provider (for example `temperature`).

    `client_keys` names the provider whose key a client may bring (`PROVIDER_KEY:<provider>`), which then replaces
    the operator's for that client's sessions; `none` refuses them. Unset, it is the provider whose own API the
    model calls (no `base_url`, or OpenRouter's): a client's key is never sent to another host unless said here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1)
    slug: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$")
    provider: Literal["scripted", "openai", "anthropic"] = "scripted"
    model: str = "scripted"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_seconds: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    options: dict[str, Any] = Field(default_factory=dict)
    client_keys: ClientKeyProvider | Literal["none"] | None = None

    @property
    def client_key_provider(self) -> ClientKeyProvider | None:
        """The provider whose client-set key this model is called with, if any (`client_keys`)."""
        if self.client_keys is not None:
            return None if self.client_keys == "none" else self.client_keys
        host = urlsplit(self.base_url).hostname if self.base_url else None
        if self.provider == "openai":
            return "openai" if host is None else "openrouter" if host == "openrouter.ai" else None
        return "anthropic" if self.provider == "anthropic" and host is None else None


class Limits(BaseModel):
    """What one App allows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_message_bytes: int = Field(DEFAULT_MAX_MESSAGE_BYTES, gt=0)
    max_tool_rounds: int = Field(8, gt=0)
    # Live sessions held in memory: None sizes it to the node (an idle session actor costs CPU and ~74 MB).
    max_live_sessions: int | None = Field(None, gt=0)
    # Live sessions one session actor (a process) hosts: 1 is a process per session; None takes the runtime's
    # setting (AOMI_SESSIONS_PER_ACTOR, `--sessions-per-actor`), whose default is 1.
    sessions_per_actor: int | None = Field(None, gt=0)
    max_live_memory_mb: int | None = Field(None, gt=0)
    idle_seconds: float = Field(900.0, gt=0)
    retention_days: float | None = Field(None, gt=0)  # None keeps stored sessions for ever
    # Sessions stored at once: a public App's sessions are made by anyone who sends a message with a new id,
    # so an operator bounds what strangers can make it store. None: no bound.
    max_sessions: int | None = Field(None, gt=0)

    def check_message(self, text: str) -> None:
        """Raise if a user message is too large (counted in UTF-8 bytes), has no text, or is not Unicode text."""
        if utf8_size(text, "The message") > self.max_message_bytes:
            raise MessageTooLarge(f"The message is larger than this App's limit of {self.max_message_bytes} bytes.")
        if not text.strip():
            raise InvalidInput("The message is empty; send some text.")

    def check_user_state(self, state: dict[str, Any]) -> None:
        """Raise if a user_state is larger than a message may be (as compact JSON in UTF-8) or holds no text.

        It is stored with the session and summarized to the model every turn, so it is bounded like a message.
        """
        if utf8_size(compact_json(state), "user_state") > self.max_message_bytes:
            raise MessageTooLarge(
                f"user_state is larger than this App's limit of {self.max_message_bytes} bytes (as compact JSON)."
            )


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def utf8_size(text: str, what: str) -> int:
    """The size of `text` in UTF-8. Raises `InvalidInput` for a lone surrogate (JSON's `"\\ud800"` decodes to
    one): it is no Unicode character, and no store or stream could keep it byte for byte."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{what} holds a lone surrogate (U+D800 to U+DFFF), which is not text; send valid Unicode."
        ) from None


@cache
def resolve_tools(names: tuple[str, ...]) -> ToolRegistry:
    # Per process, not carried with the spec: a spec travels to other processes by pickling, and a tool's module
    # holds what pickling must not copy (a client, a pool, a lock), so each process imports the tools itself.
    return ToolRegistry.from_names(names, DEMO_TOOLS)


SCRIPTED_MODEL = ModelSpec(label="Scripted (offline)", slug="scripted")


class AppSpec(BaseModel):
    """An App as declared: its name, whether it needs a key, its models, tools, prompt and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    public: bool = True
    models: tuple[ModelSpec, ...] = (SCRIPTED_MODEL,)
    default_model: str | None = None
    tools: tuple[str, ...] = ("time_now", "long_task", "always_fails", "send_eth", "sign_typed_data", "background_task")
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    limits: Limits = Field(default_factory=Limits)
    # What answers POST /api/simulate: `demo` (offline, deterministic) or an import path `package.module:name`
    # (agent/simulation.py). None: the App simulates nothing, and the route answers 501.
    simulator: str | None = Field(None, pattern=r"^(demo|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, name: str) -> str:
        if not APP_NAME_PATTERN.fullmatch(name):
            raise ValueError("an App name is 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
        return name

    @model_validator(mode="after")
    def _models_are_consistent(self) -> AppSpec:
        if not self.models:
            raise ValueError("an App offers at least one model")
        slugs = [m.slug for m in self.models]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"model slugs must be unique within an App, got {slugs}")
        if self.default_model is not None and self.model(self.default_model) is None:
            raise ValueError(f"default_model {self.default_model!r} is not among the App's models")
        return self

    @property
    def tool_registry(self) -> ToolRegistry:
        """The App's tools (built-ins by name, others by import path), resolved once in each process that asks.
        Raises `InvalidInput` for a tool not found."""
        return resolve_tools(self.tools)

    def model(self, label_or_slug: str | None) -> ModelSpec | None:
        """The model with this slug or label; the App's default for None."""
        if label_or_slug is None:
            label_or_slug = self.default_model or self.models[0].slug
        return next((m for m in self.models if label_or_slug in (m.slug, m.label)), None)


DEFAULT_APP_SPEC = AppSpec(name=DEFAULT_APP, simulator="demo")


@dataclass
class App:
    """An App built for running turns: its spec, a provider per model slug, and its tool registry."""

    spec: AppSpec
    providers: dict[str, ModelProvider]
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    secrets: SecretSource | None = None  # the App's client secrets (its store), where sessions run
    make_provider: Callable[[ModelSpec, str | None], ModelProvider] | None = None  # builds one for a client's key
    client: ClientSecrets | None = None  # set for a turn of a session bound to a client (`secrets.for_client`)

    @property
    def name(self) -> str:
        return self.spec.name

    def model_slug(self, slug: str | None) -> str:
        """The slug of the model offered by this slug or label; the App's default for None."""
        chosen = self.spec.model(slug)
        if chosen is None or chosen.slug not in self.providers:
            raise ModelUnavailable(f"The model {slug!r} is not offered by the App {self.name!r}.")
        return chosen.slug

    def provider(self, slug: str | None) -> ModelProvider:
        return self.providers[self.model_slug(slug)]

    async def aclose(self) -> None:
        """Close every provider (each once, though two slugs may share one); the App runs no turn afterwards."""
        for provider in {id(p): p for p in self.providers.values()}.values():
            try:
                await provider.aclose()
            except Exception as exc:  # one provider failing to close leaves the others to close
                log_failure(log, f"closing a model provider of App {self.name}", exc, logging.WARNING)
