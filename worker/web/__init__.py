"""HTTP: requests in, feeds, the status page, `/healthz`, `/metrics` and `/opml` out.

- `serve`: `build_app(config, ...)` -> a Starlette app, and the uvicorn server around it (slow
  clients bounded, an optional access token). It reads what `worker.publish` wrote and what
  `worker.store` holds; it writes nothing.
"""
