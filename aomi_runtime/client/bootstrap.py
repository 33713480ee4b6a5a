"""Where the client meets Ray and the server's own code (the only client module that imports them): the
in-cluster mode, whose routes of `docs/api.md` run in the caller's process and reach the session actors over Ray
handles with no HTTP server between, and the runtime `Client.local` starts in this process.

The in-cluster mode's transport calls the runtime's ASGI app in this process, streaming: httpx's own
ASGITransport gathers a whole response before it returns it, which an event stream never ends.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
from starlette.types import ASGIApp, Message

from ..agent.errors import DeploymentError, ServerError
from ..agent.logs import log_failure
from ..serve_app.errors import route_name

if TYPE_CHECKING:
    from ..serve_app.launch import Launched
    from ..serve_app.settings import Settings

log = logging.getLogger(__name__)

_END = b""
_BROKEN = object()  # the app failed after its answer began: the body breaks off, as a dropped connection would


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class _Body(httpx.AsyncByteStream):
    def __init__(
        self, chunks: asyncio.Queue[bytes | object], task: asyncio.Task[None], gone: asyncio.Event, read: float | None
    ) -> None:
        self._chunks = chunks
        self._task = task
        self._gone = gone
        self._read = read

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = await asyncio.wait_for(self._chunks.get(), self._read)
            except TimeoutError:
                raise httpx.ReadTimeout("No data within the read timeout.") from None
            if chunk is _BROKEN:
                raise httpx.ReadError("The answer broke off: the route failed (see the log).")
            if chunk == _END:
                return
            assert isinstance(chunk, bytes)
            yield chunk

    async def aclose(self) -> None:
        # The client is done (or gone): tell the app, as a server would, then end its task.
        self._gone.set()
        await _stop(self._task)


class InProcessTransport(httpx.AsyncBaseTransport):
    """Serves each request by calling `app`; the response returns when its head is sent, its body streams.
    The request's read timeout applies to the head and to each piece of the body, as over a socket."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        read: float | None = request.extensions.get("timeout", {}).get("read")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (request.url.host, request.url.port or 80),
            "client": ("127.0.0.1", 0),
        }
        head: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes | object] = asyncio.Queue()
        gone = asyncio.Event()
        sent_body = False

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not head.done():
                    head.set_result(message)
            elif message["type"] == "http.response.body":
                if chunk := message.get("body", b""):
                    chunks.put_nowait(chunk)
                if not message.get("more_body", False):
                    chunks.put_nowait(_END)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            except Exception as exc:
                if not head.done():
                    head.set_exception(exc)
                else:
                    log_failure(log, f"answering {request.method} {route_name(scope)}", exc)
                    chunks.put_nowait(_BROKEN)
            finally:
                if not head.done():
                    head.set_exception(ServerError("The app ended without answering.", 500))
                chunks.put_nowait(_END)

        task = asyncio.create_task(run())
        try:
            start = await asyncio.wait_for(asyncio.shield(head), read)
        except BaseException as exc:
            head.cancel()  # nothing waits for it any more
            await _stop(task)
            if isinstance(exc, TimeoutError):
                raise httpx.ReadTimeout("No answer within the read timeout.", request=request) from None
            raise
        return httpx.Response(
            start["status"], headers=start.get("headers", []), stream=_Body(chunks, task, gone, read), request=request
        )


def in_cluster_transport(settings: Settings | None = None, address: str = "auto") -> httpx.AsyncBaseTransport:
    """The runtime's routes run in this process, reaching its actors over Ray handles: the same answers as over
    HTTP, without Serve in between. Joins the cluster at `address` unless Ray is already initialised; settings
    come from the same `AOMI_*` environment as the deployment's, so the Apps, limits and keys agree."""
    import ray

    from ..actors.app_actors import app_namespace
    from ..serve_app.api import create_api
    from ..serve_app.settings import Settings

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    settings = settings or Settings()
    for spec in settings.apps:  # reach a deployed runtime; never start a second one from a notebook
        namespace = app_namespace(settings.namespace, spec.name)
        try:
            ray.get_actor("directory", namespace=namespace)
        except ValueError:
            raise DeploymentError(
                f"No aomi runtime runs in this Ray cluster for the App {spec.name!r} (namespace {namespace!r}): "
                "deploy it first (`aomi-runtime serve --address auto`, or `serve deploy`), with the same AOMI_* "
                "settings as this process."
            ) from None
    return InProcessTransport(create_api(settings.runtime(), settings))


def launch_local(settings: Settings | None = None) -> Launched:
    """Start the runtime in this process for `Client.local`: `settings`, by default the embedded default on a
    free port (a local Ray instance, unless Ray is already initialised, and Serve)."""
    from ..serve_app.launch import launch
    from ..serve_app.settings import Settings

    return launch(settings or Settings(port=_free_port()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
