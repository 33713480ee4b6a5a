"""The Python client, async face: a connection to the runtime's HTTP API (`docs/api.md`) for one App, for notebooks
and scripts; or, on the cluster, to the same routes run in this process over Ray handles
(`AsyncClient.in_cluster`). `Client` is its sync face.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        session = await client.session()
        reply = await session.send("/tool long_task {\"steps\": 3}")   # waits for the turn, shows progress
        print(reply.text)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

import httpx

from ..agent.apps import DEFAULT_APP
from ..agent.errors import InvalidInput
from ..agent.records import SessionInfo
from .answers import error_of_answer, retried
from .async_session import AsyncSession

if TYPE_CHECKING:
    from ..serve_app.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"
IN_CLUSTER_URL = "http://in-cluster"


class ClientOptions(TypedDict, total=False):
    """`AsyncClient`'s keyword arguments, which the sync `Client` takes and hands on as they are."""

    app: str
    api_key: str | None
    public_key: str | None
    client_id: str | None
    timeout: float
    progress: bool | None
    transport: httpx.AsyncBaseTransport | None


class AsyncClient:
    """A connection to the runtime for one App (and its key, if the App is keyed).

    Errors are the runtime's own classes (`SessionNotFound`, `Forbidden`, `MessageTooLarge`, ...), raised with
    the server's message; any other error answer raises `ServerError` (with its `status`).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        app: str = DEFAULT_APP,
        api_key: str | None = None,
        public_key: str | None = None,
        client_id: str | None = None,
        timeout: float = 30.0,
        progress: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        self.public_key = public_key
        # Binds the sessions this client chats in to its secrets and provider keys; a capability, as a session
        # id is: make it unguessable (a UUID4), and keep it.
        self.client_id = client_id
        self.progress = progress  # None: shown only where output is interactive
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, transport=transport)
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, stop: Callable[[], None]) -> None:
        """Call `stop` (in a thread) when the client closes: a runtime the client started, say."""
        self._on_close.append(stop)

    @classmethod
    def in_cluster(cls, settings: Settings | None = None, *, address: str = "auto", **options: Any) -> AsyncClient:
        """A client that runs the routes in this process and reaches the runtime's actors over Ray handles, for
        a driver or notebook on the cluster; see `bootstrap.in_cluster_transport`."""
        from .bootstrap import in_cluster_transport  # Ray and the server, only for this mode

        return cls(IN_CLUSTER_URL, transport=in_cluster_transport(settings, address), **options)

    # --- the App -----------------------------------------------------------------------------------

    async def session(
        self, session_id: str | None = None, *, title: str | None = None, create: bool = True
    ) -> AsyncSession:
        """A new session (a fresh UUID4 id), or the one with `session_id`: loaded into memory if stored, made if
        not (ids are the client's to choose), or, with `create=False`, `SessionNotFound` raised."""
        if session_id is not None and not create:
            info = SessionInfo.model_validate(await self.request("GET", f"/api/sessions/{session_id}"))
            return AsyncSession(self, info.session_id, info.title)
        body = {"session_id": session_id or str(uuid.uuid4()), "public_key": self.public_key, "title": title}
        made = await self.request("POST", "/api/sessions", params={"app": self.app}, json=body)
        return AsyncSession(self, made["session_id"], made["title"])

    async def sessions(self, public_key: str | None = None, limit: int = 50) -> list[SessionInfo]:
        """The sessions of a public key (default: this client's), newest activity first."""
        key = public_key or self.public_key
        if not key:
            raise InvalidInput("Sessions are listed per public key: give one here or to the client.")
        found = await self.request("GET", "/api/sessions", params={"public_key": key, "limit": limit})
        return [SessionInfo.model_validate(s) for s in found]

    async def apps(self) -> list[str]:
        """The Apps this client's key may use."""
        return list(await self.request("GET", "/api/control/apps"))

    async def models(self) -> list[str]:
        """The labels of the models this App offers."""
        return list(await self.request("GET", "/api/control/models", params={"app": self.app}))

    async def set_secrets(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Set this client's secrets in its App (each kept encrypted, or in memory only: see SECURITY.md); a tool
        of a session this client chats in reads one with `ctx.secret(name)`. Returns the handles
        (`{NAME: "$SECRET:NAME"}`): a value is never sent back."""
        body = {"client_id": self._own_client_id(), "secrets": dict(secrets)}
        return dict((await self.request("POST", "/api/secrets", params={"app": self.app}, json=body))["handles"])

    async def delete_secret(self, name: str) -> bool:
        """Delete one of this client's secrets; whether it was set."""
        params = {"client_id": self._own_client_id(), "app": self.app}
        return bool((await self.request("DELETE", f"/api/secrets/{name}", params=params))["deleted"])

    async def clear_secrets(self) -> int:
        """Delete all of this client's secrets in its App; how many there were."""
        params = {"client_id": self._own_client_id(), "app": self.app}
        return int((await self.request("DELETE", "/api/secrets", params=params))["cleared"])

    async def simulate(
        self, transactions: Sequence[Mapping[str, Any]], *, sender: str | None = None, chain_id: int | None = None
    ) -> dict[str, Any]:
        """Simulate a batch of transactions (`{to, value?, data?, label?, chain_id?}` each, `value` in wei) with
        the App's simulator; the result, with its fee quote. `NotConfigured` if the App names no simulator."""
        body = {"transactions": [dict(t) for t in transactions], "from": sender, "chain_id": chain_id}
        body = {k: v for k, v in body.items() if v is not None}
        return dict((await self.request("POST", "/api/simulate", params={"app": self.app}, json=body))["result"])

    def _own_client_id(self) -> str:
        if not self.client_id:
            raise InvalidInput("Secrets belong to a client: give the client a client_id (a UUID4 you keep).")
        return self.client_id

    async def health(self) -> bool:
        response = await self._http.get("/health")
        return response.status_code == 200 and response.text == "OK"

    # --- plumbing ----------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        session_id: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        attempts: int = 1,
    ) -> Any:
        """One call of the API: the JSON answered, or the runtime's error raised. A call that is safe to repeat
        is tried up to `attempts` times while the connection fails or the runtime answers it is (re)starting."""
        headers = {"X-Session-Id": session_id} if session_id else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(1, attempts + 1):
            try:
                response = await self._http.request(method, path, params=query, json=json, headers=headers)
            except httpx.TransportError:
                if attempt == attempts:
                    raise
            else:
                if not response.is_error:
                    return response.json()
                if attempt == attempts or not retried(response):
                    raise error_of_answer(response)
            await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        finally:
            stops, self._on_close = self._on_close, []
            for stop in stops:
                await asyncio.to_thread(stop)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()
