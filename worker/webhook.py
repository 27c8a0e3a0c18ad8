"""Tell the operator's webhook when a source degrades or recovers: one small JSON POST.

    {"source": "blog", "state": "degraded", "reasons": ["..."], "at": "2026-11-25T12:00:00+00:00"}

The URL is the operator's own (`[worker] webhook_url`), so it is trusted: no SSRF guard. A
failure is logged, never raised, and a slow receiver costs a run at most `WEBHOOK_TIMEOUT`.
"""

from __future__ import annotations

import httpx

from worker.logs import fields, log
from worker.models import RunReport

__all__ = ["WEBHOOK_TIMEOUT", "notify_transition", "transition_message"]

WEBHOOK_TIMEOUT = 5.0  # seconds for the whole exchange; a receiver should answer at once


def transition_message(report: RunReport) -> dict[str, object]:
    return {
        "source": report.source_id,
        "state": report.health_state,
        "reasons": list(report.health_reasons),
        "at": (report.finished or report.started).isoformat(),
    }


async def notify_transition(
    url: str, report: RunReport, transport: httpx.AsyncBaseTransport | None = None
) -> bool:
    """POST the transition `report` ended with to `url`; False (and a warning) on failure."""
    try:
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, transport=transport) as client:
            response = await client.post(url, json=transition_message(report))
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning(
            "webhook failed",
            extra=fields(source=report.source_id, url=url, error=f"{type(exc).__name__}: {exc}"),
        )
        return False
    return True
