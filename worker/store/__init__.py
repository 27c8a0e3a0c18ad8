"""The state: the only package that speaks SQL.

- `state`: `Store.open(state_url)`; items, article URLs, validators, run history and health,
  template blocks, SimHash lookups and, in cluster mode, feeds and replicas, in and out as
  `worker.models` dataclasses; failures are `worker.errors.StoreError`;
- `db`: a connection and its dialect, SQLite (one process) or PostgreSQL (replicas), behind one
  portable SQL text.
"""
