"""Commands a person runs beside the worker, each over the same stages the worker uses.

- `demo`: a bundled sample site -> scraped once and served, offline (`feedworker demo`);
- `dryrun`: one source -> what a run would do, with nothing written (`feedworker try`);
- `canary`: site rules' test URLs -> the rules that broke (`feedworker rules test`).
"""
