"""A fetched page -> the same page rendered by headless Chromium (`Renderer.render`).

One page, step by step:
1. a slot (at most `render_concurrency` pages at once), then the shared browser
   (`worker.render.browser`; started on first use);
2. a browser context of its own (no cookies, storage or cache shared with any other page),
   downloads denied, permissions denied, a tab in it, and a script run before the page's own
   that turns dialogs, `window.open` and service workers into no-ops (Chromium's switches and
   CDP's dialog handling stand behind it);
3. every request of the tab is paused (CDP's Fetch domain) and answered by feedworker:
   - the page's own document is the one already fetched (robots.txt, per-host politeness, the
     SSRF guard, the size limit: `worker.fetch.client.Fetcher.fetch_page`), never fetched twice;
     a later navigation of the tab (a script's redirect) goes through `fetch_page` as well;
   - every other request is judged (`worker.render.policy.request_refusal`: scheme, method,
     kind, third-party host, count) and, when allowed, made by `Fetcher.fetch_resource` under
     the SSRF guard, which judges the address it connects to; a refused one fails in the page;
4. the page settles: the `render_wait` selector appears, or else the load event has fired and
   no request has been in flight for `QUIET_SECONDS`, all within `render_timeout`;
5. the DOM is serialised, refused when larger than `max_page_bytes`, and becomes the page's
   text; the context is disposed.

A page that does not settle in time, crashes its tab, or is rendering when the browser is
killed (memory, hang) fails with a `RenderError` naming why; the browser carries on, or is
started again for the next page.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from worker.errors import FetchError, RenderError
from worker.fetch.client import Blocked, Fetcher
from worker.models import NotModified, Page
from worker.redact import redact_url, strip_userinfo
from worker.render.browser import Browser, BrowserOptions
from worker.render.cdp import CdpClosed, CdpConnection, CdpError
from worker.render.policy import RenderPolicy, request_refusal

__all__ = ["BlockedRequest", "Rendered", "Renderer", "RendererOptions"]

log = logging.getLogger("feedworker")

Json = dict[str, Any]
Headers = list[tuple[str, str]]
QUIET_SECONDS = 0.5  # no request in flight this long after the load event: settled
POLL_SECONDS = 0.1  # between two looks for the `render_wait` selector
CLOSE_TIMEOUT = 10.0  # disposing a page's context; longer means the browser is hung
MAX_NAVIGATIONS = 5  # the tab's own navigations after the first (script redirects)
# Request headers of the browser's not passed on: the fetcher sets them (its User-Agent, its
# cookie jar, the encodings it decodes within limits), or they are about the connection.
_NOT_FORWARDED = frozenset(
    {
        "host", "connection", "content-length", "transfer-encoding", "accept-encoding", "cookie",
        "user-agent", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade",
    }
)  # fmt: skip
# Run in every frame before the page's scripts: what a page must not do, made a no-op.
HARDENING_SCRIPT = """(() => {
  const quiet = () => undefined;
  window.alert = quiet; window.print = quiet;
  window.confirm = () => false; window.prompt = () => null;
  window.open = () => null;
  try { Object.defineProperty(Navigator.prototype, 'serviceWorker', {get: quiet}); } catch (e) {}
})();"""
# Permissions a page could ask for; each is denied in its context.
DENIED_PERMISSIONS = (
    "geolocation", "notifications", "camera", "microphone", "midi", "clipboard-read",
    "clipboard-write", "background-sync", "persistent-storage", "idle-detection",
)  # fmt: skip
# The rendered DOM, doctype included, or its length when over the limit (UTF-16 units).
_SERIALISE = """(() => {
  const d = document, t = d.doctype;
  const head = t ? '<!DOCTYPE ' + t.name + '>' : '';
  const html = head + (d.documentElement ? d.documentElement.outerHTML : '');
  return html.length > %d ? {tooLarge: html.length} : {html: html};
})()"""


@dataclass(frozen=True, slots=True)
class RendererOptions:
    concurrency: int = 2  # pages rendered at once
    max_page_bytes: int = 10 * 1024 * 1024  # the rendered DOM's limit
    browser: BrowserOptions = field(default_factory=BrowserOptions)

    @classmethod
    def from_settings(cls, settings: Any) -> RendererOptions:
        """From `worker.config.Settings` (its `render_*` settings and `max_page_bytes`)."""
        limit = settings.max_page_bytes
        return cls(
            concurrency=settings.render_concurrency,
            max_page_bytes=limit,
            browser=BrowserOptions(
                executable=settings.render_browser,
                memory_limit=settings.render_memory_mb * 1024 * 1024,
                sandbox=settings.render_sandbox,
                # The DOM comes back as one JSON string: at worst six bytes per character.
                max_message_bytes=6 * limit + 1024 * 1024,
            ),
        )


@dataclass(frozen=True, slots=True)
class BlockedRequest:
    """A request of a rendered page that was refused, and why (its URL redacted)."""

    url: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rendered:
    page: Page  # the page with the rendered DOM as its text
    requests: int  # requests made for it (its resources, its navigations)
    blocked: tuple[BlockedRequest, ...]
    bytes_received: int  # by those requests, on the wire


class Renderer:
    """Renders pages in the shared browser; `aclose()` stops the browser."""

    def __init__(self, options: RendererOptions) -> None:
        self.options = options
        self.browser = Browser(options.browser)
        self._slots = asyncio.Semaphore(options.concurrency)

    async def render(self, page: Page, fetcher: Fetcher, policy: RenderPolicy) -> Rendered:
        """`page` (fetched by `fetcher`, an HTML page) rendered; `RenderError` when it cannot
        be. `fetcher` makes the page's requests: the source's session."""
        async with self._slots, self.browser.use() as cdp:
            job = _PageJob(cdp, page, fetcher, policy, self.options.max_page_bytes)
            started = time.monotonic()
            try:
                rendered = await job.run()
            finally:
                if not await job.close():
                    await self.browser.recycle("a page's context could not be closed")
        log.info(
            "page rendered",
            extra={
                "fields": {
                    "url": redact_url(page.final_url),
                    "requests": rendered.requests,
                    "blocked": len(rendered.blocked),
                    "duration_ms": round((time.monotonic() - started) * 1000),
                }
            },
        )
        return rendered

    async def aclose(self) -> None:
        await self.browser.aclose()


class _PageJob:
    """One page in one browser context: its requests answered, its settling watched."""

    def __init__(
        self,
        cdp: CdpConnection,
        page: Page,
        fetcher: Fetcher,
        policy: RenderPolicy,
        max_bytes: int,
    ) -> None:
        self.cdp = cdp
        self.page = page
        self.fetcher = fetcher
        self.policy = policy
        self.max_bytes = max_bytes
        self.shown = redact_url(page.final_url)
        self.context = ""
        self.target = ""  # also the main frame's id
        self.sessions: list[str] = []
        self.documents: dict[str, Page] = {page.final_url: page}  # fetched, by URL
        self.document_url = page.final_url  # the tab's current document
        self.navigations = 0
        self.requests = 0
        self.bytes_received = 0
        self.blocked: list[BlockedRequest] = []
        self.in_flight = 0
        self.last_activity = time.monotonic()
        self.loaded = asyncio.Event()
        self.crashed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> Rendered:
        waiting = "the page to load"
        try:
            async with asyncio.timeout(self.policy.timeout):
                await self._open()
                waiting = "the page to settle"
                await self._navigate()
                if self.policy.wait:
                    waiting = f"render_wait {self.policy.wait!r} to appear"
                    await self._wait_for_selector(self.policy.wait)
                else:
                    waiting = "the network to go quiet (or set render_wait)"
                    await self._wait_for_quiet()
                waiting = "the page's DOM"
                html = await self._serialise()
        except TimeoutError:
            reason = f"not rendered within {self.policy.timeout:g} s: waited for {waiting}"
            raise RenderError(self.shown, reason) from None
        except CdpClosed as exc:
            why = str(exc).split(": ", 1)[-1]  # "browser restarted: memory over 512 MiB"
            raise RenderError(self.shown, f"not rendered: {why}") from None
        except CdpError as exc:
            raise RenderError(self.shown, f"not rendered: the browser refused {exc}") from None
        return Rendered(
            self._rendered_page(html), self.requests, tuple(self.blocked), self.bytes_received
        )

    async def close(self) -> bool:
        """Dispose of the page's context; False when the browser did not answer in time."""
        for task in self.tasks:
            task.cancel()
        for session in self.sessions:
            self.cdp.forget(session)
        if not self.context or self.cdp.closed is not None:
            return True
        try:
            await self.cdp.send(
                "Target.disposeBrowserContext",
                {"browserContextId": self.context},
                timeout=CLOSE_TIMEOUT,
            )
        except TimeoutError:
            return False
        except CdpError:
            pass
        return True

    # -- setting the tab up --------------------------------------------------------------------

    async def _open(self) -> None:
        cdp = self.cdp
        created = await cdp.send("Target.createBrowserContext", {"disposeOnDetach": True})
        self.context = created["browserContextId"]
        await cdp.send(
            "Browser.setDownloadBehavior", {"behavior": "deny", "browserContextId": self.context}
        )
        await asyncio.gather(*(self._deny(name) for name in DENIED_PERMISSIONS))
        target = await cdp.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": self.context}
        )
        self.target = target["targetId"]
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )
        await self._prepare(attached["sessionId"], main=True)

    async def _deny(self, permission: str) -> None:
        with contextlib.suppress(CdpError):  # a name this Chromium does not know
            await self.cdp.send(
                "Browser.setPermission",
                {
                    "permission": {"name": permission},
                    "setting": "denied",
                    "browserContextId": self.context,
                },
            )

    async def _prepare(self, session: str, *, main: bool) -> None:
        """Intercept a tab's (or a frame's, or a worker's) requests and watch its events."""
        self.sessions.append(session)
        self.cdp.listen(session, lambda method, params: self._event(session, method, params))
        send = self.cdp.send
        await send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session=session)
        if main:
            await send("Page.enable", session=session)
            await send("Inspector.enable", session=session)
            await send(
                "Page.addScriptToEvaluateOnNewDocument",
                {"source": HARDENING_SCRIPT},
                session=session,
            )
            await send(
                "Emulation.setUserAgentOverride",
                {"userAgent": self.fetcher.user_agent},
                session=session,
            )
        await send(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
            session=session,
        )

    # -- events --------------------------------------------------------------------------------

    def _event(self, session: str, method: str, params: Json) -> None:
        if method == "Fetch.requestPaused":
            self._spawn(self._answer(session, params))
        elif method == "Page.javascriptDialogOpening":
            self.cdp.notify("Page.handleJavaScriptDialog", {"accept": False}, session=session)
        elif method == "Page.loadEventFired":
            self.loaded.set()
        elif method == "Inspector.targetCrashed":
            self.crashed.set()
        elif method == "Target.attachedToTarget":
            self._spawn(self._attach_child(params))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _attach_child(self, params: Json) -> None:
        """A frame in another process, or a worker: its requests are intercepted too."""
        child = params["sessionId"]
        try:
            with contextlib.suppress(CdpError):
                await self._prepare(child, main=False)
        finally:
            self.cdp.notify("Runtime.runIfWaitingForDebugger", session=child)

    # -- answering requests --------------------------------------------------------------------

    async def _answer(self, session: str, event: Json) -> None:
        request_id = event["requestId"]
        request = event["request"]
        url, method = request["url"], request.get("method", "GET")
        self.in_flight += 1
        self.last_activity = time.monotonic()
        try:
            if event.get("resourceType") == "Document" and event.get("frameId") == self.target:
                await self._answer_document(session, request_id, url, method)
            else:
                await self._answer_resource(session, request_id, event)
        except FetchError as exc:
            self._refuse(session, request_id, url, exc.reason, blocked=isinstance(exc, Blocked))
        except Exception as exc:  # a bug costs this request, never a request left paused
            log.exception("page request failed", extra={"fields": {"url": redact_url(url)}})
            self._refuse(session, request_id, url, f"internal error: {exc!r}", blocked=False)
        finally:
            self.in_flight -= 1
            self.last_activity = time.monotonic()

    async def _answer_document(self, session: str, request_id: str, url: str, method: str) -> None:
        """The tab's own document: the page as fetched, or a navigation fetched politely."""
        url = url.partition("#")[0]
        page = self.documents.get(url)
        if page is None:
            if method.upper() != "GET" or self.navigations >= MAX_NAVIGATIONS:
                reason = "form submission" if method.upper() != "GET" else "too many navigations"
                self._stay(session, request_id, url, reason)
                return
            self.navigations += 1
            try:
                page = await self._fetch_document(url)
            except FetchError as exc:  # a download, a refusal: the tab keeps its page
                self._stay(session, request_id, url, exc.reason)
                return
        if page.final_url != url:  # redirected: the browser asks for the target, known by then
            self._fulfil(session, request_id, 302, [("Location", page.final_url)], b"")
            return
        self.document_url = url
        body = page.raw.body if page.raw is not None else page.text.encode()
        content_type = (page.raw.content_type if page.raw is not None else None) or (
            "text/html; charset=utf-8"
        )
        self._fulfil(session, request_id, 200, [("Content-Type", content_type)], body)

    def _stay(self, session: str, request_id: str, url: str, reason: str) -> None:
        """Refuse a navigation of the tab as a browser does a download: with "204 No Content",
        which leaves the page where it is (failing it would show an error page instead)."""
        shown = redact_url(url)
        self.blocked.append(BlockedRequest(shown, f"navigation: {reason}"))
        self._fulfil(session, request_id, 204, [], b"")

    async def _fetch_document(self, url: str) -> Page:
        policy = self.policy
        result = await self.fetcher.fetch_page(
            url,
            allow_private=policy.allow_private,
            trusted_origin=policy.trusted_origin,
            respect_robots=policy.respect_robots,
            decode=False,
        )
        if isinstance(result, NotModified):  # no validators were sent
            raise RenderError(redact_url(url), "answered 304 to a plain request")
        self.requests += 1
        self.bytes_received += result.size
        self.documents[url] = self.documents[result.final_url] = result
        return result

    async def _answer_resource(self, session: str, request_id: str, event: Json) -> None:
        request = event["request"]
        url, method = request["url"], request.get("method", "GET")
        kind = event.get("resourceType", "Other")
        refusal = request_refusal(url, method, kind, self.document_url, self.policy, self.requests)
        if refusal:
            self._refuse(session, request_id, url, refusal, blocked=True)
            return
        self.requests += 1
        resource = await self.fetcher.fetch_resource(
            url,
            method=method,
            headers=_forwarded(request.get("headers") or {}),
            content=_post_data(request),
            allow_private=self.policy.allow_private,
            trusted_origin=self.policy.trusted_origin,
        )
        self.bytes_received += resource.wire_bytes
        self._fulfil(session, request_id, resource.status, list(resource.headers), resource.body)

    def _fulfil(
        self,
        session: str,
        request_id: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        self.cdp.notify(
            "Fetch.fulfillRequest",
            {
                "requestId": request_id,
                "responseCode": status,
                "responseHeaders": [{"name": n, "value": v} for n, v in headers],
                "body": base64.b64encode(body).decode("ascii"),
            },
            session=session,
        )

    def _refuse(
        self, session: str, request_id: str, url: str, reason: str, *, blocked: bool
    ) -> None:
        shown = redact_url(url)
        self.blocked.append(BlockedRequest(shown, reason))
        log.debug("page request refused", extra={"fields": {"url": shown, "reason": reason}})
        error = "BlockedByClient" if blocked else "Failed"
        self.cdp.notify(
            "Fetch.failRequest", {"requestId": request_id, "errorReason": error}, session=session
        )

    # -- settling ------------------------------------------------------------------------------

    async def _navigate(self) -> None:
        answer = await self.cdp.send(
            "Page.navigate", {"url": self.page.final_url}, session=self.sessions[0]
        )
        if answer.get("errorText"):
            raise RenderError(self.shown, f"not rendered: {answer['errorText']}")

    async def _wait_for_quiet(self) -> None:
        await self._until(self.loaded)
        while True:
            quiet_for = time.monotonic() - self.last_activity
            if self.in_flight == 0 and quiet_for >= QUIET_SECONDS:
                return
            await self._pause(max(POLL_SECONDS, QUIET_SECONDS - quiet_for))

    async def _wait_for_selector(self, selector: str) -> None:
        expression = f"document.querySelector({json.dumps(selector)}) !== null"
        while not await self._evaluate(expression):
            await self._pause(POLL_SECONDS)

    async def _until(self, event: asyncio.Event) -> None:
        while not event.is_set():
            await self._pause(POLL_SECONDS)

    async def _pause(self, seconds: float) -> None:
        if self.crashed.is_set():
            raise RenderError(self.shown, "not rendered: the page crashed its tab (out of memory?)")
        await asyncio.sleep(seconds)

    async def _evaluate(self, expression: str) -> Any:
        answer = await self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session=self.sessions[0],
        )
        if "exceptionDetails" in answer:
            raise RenderError(self.shown, "not rendered: the page's DOM could not be read")
        return answer.get("result", {}).get("value")

    async def _serialise(self) -> str:
        value = await self._evaluate(_SERIALISE % self.max_bytes)
        if not isinstance(value, dict) or "tooLarge" in value:
            raise RenderError(self.shown, f"rendered page larger than {self.max_bytes} bytes")
        html = str(value.get("html", ""))
        if len(html.encode("utf-8", "surrogatepass")) > self.max_bytes:
            raise RenderError(self.shown, f"rendered page larger than {self.max_bytes} bytes")
        return html

    def _rendered_page(self, html: str) -> Page:
        document = self.documents.get(self.document_url, self.page)
        return Page(
            url=self.page.url,
            final_url=strip_userinfo(self.document_url),
            status=document.status,
            content_type="text/html",
            text=html,
            encoding="utf-8",
            validators=self.page.validators,
            size=self.page.size,
        )


def _forwarded(headers: dict[str, str]) -> dict[str, str]:
    """The browser's request headers worth passing on (Accept, Referer, Content-Type...)."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _NOT_FORWARDED and not name.startswith(":")
    }


def _post_data(request: Json) -> bytes | None:
    entries = request.get("postDataEntries")
    if entries:
        return b"".join(base64.b64decode(entry.get("bytes", "")) for entry in entries)
    data = request.get("postData")
    return data.encode() if isinstance(data, str) else None
