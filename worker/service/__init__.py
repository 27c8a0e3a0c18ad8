"""The long-running worker: config and clock in, scheduled source runs out.

- `runner`: `Worker` (the store, the fetcher, the extractor processes; runs sources) and
  `Service` (`run` and `run --serve`: scheduling, reloading, shutdown);
- `schedule`: sources -> APScheduler jobs (interval or cron, jitter, coalescing);
- `reload`: the config folder, watched -> a new `Config`, or problems logged;
- `cluster`: several replicas sharing the sources through procrastinate on PostgreSQL;
- `extractpool` and `extractjob`: pages in, `Article`s out, in child processes beside the event
  loop (`extractjob` is the child's side and imports only what extraction needs);
- `health`: a run's report and the source's history -> a verdict (degraded or not, and why);
  pure;
- `metrics`, `webhook`, `logs`, `memory`: what leaves the process about its runs.
"""
