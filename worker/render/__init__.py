"""Rendering pages in headless Chromium, for sources with `render = "browser"`.

`Renderer` (worker.render.page) renders a page the fetcher fetched; `RenderPolicy`
(worker.render.policy) says what the page may load; `Browser` (worker.render.browser) is the one
shared Chromium process; `worker.render.cdp` speaks the DevTools Protocol over its pipe.
"""

from worker.render.browser import BROWSER_PACKAGES, BrowserMissing, find_browser
from worker.render.page import BlockedRequest, Rendered, Renderer, RendererOptions
from worker.render.policy import RenderPolicy

__all__ = [
    "BROWSER_PACKAGES",
    "BlockedRequest",
    "BrowserMissing",
    "RenderPolicy",
    "Rendered",
    "Renderer",
    "RendererOptions",
    "find_browser",
]
