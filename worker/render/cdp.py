"""A small Chrome DevTools Protocol client over the browser's debugging pipe.

Chromium started with ``--remote-debugging-pipe`` reads commands from its file descriptor 3 and
writes answers and events to descriptor 4, each message one JSON object ended by a NUL byte. No
port is opened (no other local process can drive the browser), no websocket library is needed,
and the browser exits when the pipe closes. Sessions are "flat" (``Target.attachToTarget`` with
``flatten``): a message for a page carries its ``sessionId``.

`CdpConnection.send` sends a command and waits for its answer (`CdpError` when Chromium refuses
it); events go to the handler registered for their session (`CdpConnection.listen`). When the
pipe breaks or the browser exits, every waiting command fails with `CdpClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

__all__ = ["CdpClosed", "CdpConnection", "CdpError", "EventHandler"]

Json = dict[str, Any]
EventHandler = Callable[[str, Json], None]  # (method, params)
SEPARATOR = b"\0"


class CdpError(Exception):
    """Chromium answered a command with an error (a closed target, a bad parameter)."""

    def __init__(self, method: str, message: str) -> None:
        self.method = method
        super().__init__(f"{method}: {message}")


class CdpClosed(CdpError):
    """The pipe to the browser is gone: it exited, crashed, or was stopped."""

    def __init__(self, reason: str) -> None:
        super().__init__("connection", reason)


class CdpConnection:
    """One browser's pipe: commands out, answers and events in (one reading task)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.WriteTransport) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[str, asyncio.Future[Json]]] = {}
        self._handlers: dict[str, EventHandler] = {}  # by session id ("" for the browser)
        self.closed: str | None = None  # why, once closed
        self._task = asyncio.create_task(self._read_loop())

    async def send(
        self, method: str, params: Json | None = None, *, session: str = "", timeout: float = 30
    ) -> Json:
        """Send a command (to a page's `session`, or the browser) and return its result."""
        if self.closed is not None:
            raise CdpClosed(self.closed)
        number = next(self._ids)
        message: Json = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        answer: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._waiting[number] = (method, answer)
        try:
            self._writer.write(json.dumps(message).encode() + SEPARATOR)
            async with asyncio.timeout(timeout):
                return await answer
        finally:
            self._waiting.pop(number, None)

    def notify(self, method: str, params: Json | None = None, *, session: str = "") -> None:
        """Send a command whose answer nobody waits for (a reply to a paused request)."""
        task = asyncio.ensure_future(self.send(method, params, session=session))
        task.add_done_callback(_swallow)

    def listen(self, session: str, handler: EventHandler) -> None:
        self._handlers[session] = handler

    def forget(self, session: str) -> None:
        self._handlers.pop(session, None)

    async def aclose(self, reason: str = "closed") -> None:
        self._fail_all(reason)
        with contextlib.suppress(Exception):
            self._writer.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(self._task)

    # -- reading -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "the browser closed its pipe"
        try:
            while True:
                raw = await self._reader.readuntil(SEPARATOR)
                self._dispatch(json.loads(raw[:-1]))
        except asyncio.IncompleteReadError:
            pass
        except asyncio.LimitOverrunError:
            reason = "the browser sent a message over the size limit"
        except (OSError, ValueError) as exc:
            reason = f"the browser's pipe failed: {exc}"
        self._fail_all(reason)

    def _dispatch(self, message: Json) -> None:
        number = message.get("id")
        if number is not None:
            method, answer = self._waiting.get(number, ("", None))
            if answer is None or answer.done():
                return
            if "error" in message:
                answer.set_exception(CdpError(method, str(message["error"].get("message"))))
            else:
                answer.set_result(message.get("result") or {})
            return
        handler = self._handlers.get(message.get("sessionId", ""))
        if handler is not None:
            handler(message.get("method", ""), message.get("params") or {})

    def _fail_all(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        for _method, answer in list(self._waiting.values()):
            if not answer.done():
                answer.set_exception(CdpClosed(reason))
        self._waiting.clear()


def _swallow(task: asyncio.Future[Json]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a reply to a page that is gone is no news
