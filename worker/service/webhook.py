"""Tell the operator's webhook when a source degrades or recovers: one small JSON POST.

    {"source": "blog", "state": "degraded", "reasons": ["..."], "at": "2026-11-25T12:00:00+00:00"}

The URL is the operator's own (`[worker] webhook_url`), so it is trusted: no SSRF guard. It often
carries a token in its query, so it is only ever shown redacted (`worker.redact`), and the body's
text is masked with the config's secrets. A failure is logged, never raised, and a receiver costs
a run at most `WEBHOOK_TIMEOUT` in all: httpx's timeouts are per phase (a receiver dripping a byte
every 3 s never trips a 5 s read timeout), so the whole call runs under one `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import httpx

from worker.models import RunReport
from worker.redact import redact_text, redact_url
from worker.service.logs import fields, log

__all__ = ["WEBHOOK_TIMEOUT", "notify_transition", "transition_message"]

WEBHOOK_TIMEOUT = 5.0  # seconds for the whole exchange; a receiver should answer at once


def transition_message(report: RunReport, secrets: Collection[str] = ()) -> dict[str, object]:
    return {
        "source": report.source_id,
        "state": report.health_state,
        "reasons": [redact_text(reason, secrets) for reason in report.health_reasons],
        "at": (report.finished or report.started).isoformat(),
    }


async def notify_transition(
    url: str,
    report: RunReport,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    secrets: Collection[str] = (),
    timeout: float = WEBHOOK_TIMEOUT,
) -> bool:
    """POST the transition `report` ended with to `url`; False (and a warning) on failure or
    when the receiver has not answered within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
                response = await client.post(url, json=transition_message(report, secrets))
            response.raise_for_status()
    except TimeoutError:
        _failed(url, report, f"no answer within {timeout:g} s")
        return False
    except httpx.HTTPError as exc:
        _failed(url, report, redact_text(f"{type(exc).__name__}: {exc}", secrets))
        return False
    return True


def _failed(url: str, report: RunReport, error: str) -> None:
    log.warning(
        "webhook failed", extra=fields(source=report.source_id, url=redact_url(url), error=error)
    )
