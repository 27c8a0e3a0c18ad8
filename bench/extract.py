"""Benchmark feedworker's body extractor against trafilatura and readability-lxml.

    .venv/bin/python -m bench.extract [--data DIR] [--dataset NAME ...] [--repeat 3]
                                      [--only feedworker trafilatura] [--worst 15] [--clock cpu]
    .venv/bin/python -m bench.extract --rules ../shared/ftr-site-config

Runs every extractor over every dataset in the shared bench folder (a sub-folder with a
`ground-truth.json`: `aeb`, `readability`) in one process, scores with the shared scorer
(`score.py`, 4-token shingles) and prints one table per dataset: precision, recall, F1, pages with
empty output, median and total ms over the pages, and each extractor's median time as a multiple
of feedworker's. `--worst N` also lists, per dataset, feedworker's N lowest-F1 pages with their
precision and recall, trafilatura's F1 on the same page when it ran, and which body path won
(`Article.method`), to see what to fix next. `--clock cpu` times each page by this process's CPU
time instead of the wall clock: steadier when other work shares the machine.

The data folder is `$FEEDWORKER_BENCH_DATA` when set, else the first `shared/bench` found beside
the project or above it (`../shared/bench` from the project root). The peers (trafilatura,
readability-lxml) are benchmark-only extras of the venv (`make bench` installs them).

`--rules DIR` measures site rules instead (`compare_rules`): on the `aeb` pages whose host has a
rule file in DIR, feedworker with the rules against feedworker without them, in one run, and
lists the rule files that make a page worse.
Also usable as `python ../shared/bench/score.py run bench.extract:feedworker_text`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from worker.errors import ExtractError
from worker.extract import extract

PROJECT = Path(__file__).resolve().parents[1]
DATA_ENV = "FEEDWORKER_BENCH_DATA"

Extractor = Callable[[str, str], str]


def bench_data_dir() -> Path | None:
    """The shared benchmark folder: `$FEEDWORKER_BENCH_DATA`, else `shared/bench` beside the
    project (`../shared/bench`) or beside one of its ancestors (a worktree lives deeper)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    for folder in PROJECT.parents:
        if (folder / "shared" / "bench" / "score.py").is_file():
            return folder / "shared" / "bench"
    return None


def load_scorer(data: Path) -> ModuleType:
    """The shared scorer, `score.py` in the data folder, imported without touching sys.path
    (registered under a name of its own: its dataclasses look their module up)."""
    name = "shared_bench_score"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, data / "score.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no score.py in {data}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def datasets(data: Path) -> list[str]:
    """The dataset folders of the shared bench, sorted."""
    return sorted(d.name for d in data.iterdir() if (d / "ground-truth.json").is_file())


def feedworker_text(html: str, url: str) -> str:
    try:
        return extract(html, url).body_text
    except ExtractError:
        return ""


def trafilatura_text(html: str, url: str) -> str:
    import trafilatura

    return trafilatura.extract(html) or ""


def trafilatura_fast_text(html: str, url: str) -> str:
    import trafilatura

    return trafilatura.extract(html, fast=True) or ""


def readability_text(html: str, url: str) -> str:
    from lxml import html as lxml_html
    from readability import Document

    summary = Document(html).summary()
    return lxml_html.fromstring(summary).text_content() if summary.strip() else ""


def parse_floor_text(html: str, url: str) -> str:
    """Not an extractor: the cost floor, parsing the page and reading all of its text."""
    from selectolax.lexbor import LexborHTMLParser

    body = LexborHTMLParser(html).body
    return body.text(separator="\n") if body is not None else ""


EXTRACTORS: dict[str, Extractor] = {
    "feedworker": feedworker_text,
    "trafilatura": trafilatura_text,
    "trafilatura fast": trafilatura_fast_text,
    "readability-lxml": readability_text,
    "floor: selectolax parse + all text": parse_floor_text,
}


@dataclass(frozen=True, slots=True)
class PageResult:
    id: str
    precision: float
    recall: float
    f1: float
    ms: float
    empty: bool
    counts: tuple[float, float, float]  # the scorer's normalised (tp, fp, fn)


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def run_one(
    func: Extractor, pages: list, score_page: Callable, repeat: int, clock: str = "wall"
) -> list[PageResult]:
    results = []
    now = CLOCKS[clock]
    for page in pages:
        html, best, text = page.html, float("inf"), ""
        for _ in range(repeat):
            start = now()
            try:
                text = func(html, page.url) or ""
            except Exception:  # a crash scores as an empty output, as in score.py
                text = ""
            best = min(best, now() - start)
        results.append(page_result(page.id, score_page(page.truth, text), 1000 * best, text))
    return results


def page_result(
    page_id: str, counts: tuple[float, float, float], ms: float, text: str
) -> PageResult:
    tp, fp, fn = counts
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return PageResult(page_id, p, r, f1, ms, not text.strip(), (tp, fp, fn))


@dataclass(frozen=True, slots=True)
class Summary:
    """One extractor's figures on one dataset, as the README table shows them."""

    precision: float
    recall: float
    f1: float
    empty: int
    median_ms: float
    total_ms: float


def summarise_run(results: list[PageResult], summarise: Callable) -> Summary:
    s = summarise(r.counts for r in results)
    median = statistics.median(r.ms for r in results)
    empty = sum(r.empty for r in results)
    return Summary(s["precision"], s["recall"], s["f1"], empty, median, sum(r.ms for r in results))


def print_table(dataset: str, table: dict[str, list[PageResult]], summarise: Callable) -> None:
    base = statistics.median(r.ms for r in table["feedworker"]) if "feedworker" in table else None
    print(f"\n## {dataset} ({len(next(iter(table.values())))} pages)\n")
    columns = ["precision", "recall", "F1", "empty", "median ms", "total ms", "time vs feedworker"]
    print(f"| extractor | {' | '.join(columns)} |")
    print("|---" * (len(columns) + 1) + "|")
    for name, results in table.items():
        s = summarise_run(results, summarise)
        ratio = f"{s.median_ms / base:.1f}x" if base else "-"
        print(
            f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.empty} "
            f"| {s.median_ms:.2f} | {s.total_ms:.0f} | {ratio} |"
        )


def print_worst(
    results: list[PageResult], peer: list[PageResult] | None, pages: Iterable, count: int
) -> None:
    """feedworker's `count` lowest-F1 pages, with trafilatura's F1 on each (`peer`) and the body
    path that won."""
    by_id = {page.id: page for page in pages}
    peer_f1 = {r.id: r.f1 for r in peer} if peer else {}
    print(f"\nfeedworker's {count} lowest-F1 pages:")
    for r in sorted(results, key=lambda r: r.f1)[:count]:
        page = by_id[r.id]
        method = article_method(page.html, page.url)
        vs = f"  trafilatura F1 {peer_f1[r.id]:.3f}" if r.id in peer_f1 else ""
        print(
            f"  {r.id[:24]:<24}  P {r.precision:.3f}  R {r.recall:.3f}  F1 {r.f1:.3f}{vs}"
            f"  {method:<16} {page.url[:70]}"
        )


def article_method(html: str, url: str) -> str:
    try:
        return extract(html, url).method
    except ExtractError:
        return "(no article)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help=f"default: ${DATA_ENV} or ../shared")
    ap.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="time each page this many times")
    ap.add_argument("--only", nargs="*", choices=sorted(EXTRACTORS), help="extractors to run")
    ap.add_argument("--worst", type=int, default=0, help="list feedworker's N worst pages")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="time with the wall clock, or this process's CPU time (on a busy shared machine)",
    )
    ap.add_argument("--rules", type=Path, help="compare with site rules from this folder")
    args = ap.parse_args()
    data = args.data or bench_data_dir()
    if data is None:
        ap.error(f"no shared/bench folder found above {PROJECT}: pass --data or set ${DATA_ENV}")
    scorer = load_scorer(data)
    if args.rules is not None:
        pages = scorer.load_pages("aeb")
        compare_rules(args.rules, pages, scorer.score_page, scorer.summarise, args.repeat)
        return
    names = args.only or list(EXTRACTORS)
    for dataset in args.dataset or datasets(data):
        pages = scorer.load_pages(dataset)
        table = {
            n: run_one(EXTRACTORS[n], pages, scorer.score_page, args.repeat, args.clock)
            for n in names
        }
        print_table(dataset, table, scorer.summarise)
        if args.worst and "feedworker" in table:
            print_worst(table["feedworker"], table.get("trafilatura"), pages, args.worst)


def compare_rules(
    folder: Path, pages: list, score_page: Callable, summarise: Callable, repeat: int
) -> None:
    """Site rules against automatic extraction on the pages whose host has a rule file: with
    the rule's body always taken when it matches ("unchecked"), and as the worker runs, where a
    rule's body that looks worse than automatic extraction's is not used."""
    from worker.extract import ExtractOptions
    from worker.siterules.load import load_rule_folders

    library = load_rule_folders([folder])
    rules_of = {page.url: rules for page in pages if (rules := library.for_url(page.url))}
    chosen = [page for page in pages if page.url in rules_of]

    def ruled(check: bool) -> Extractor:
        def text(html: str, url: str) -> str:
            options = ExtractOptions(site_rules=rules_of[url], check_rules=check)
            try:
                return extract(html, url, options).body_text
            except ExtractError:
                return ""

        return text

    table = {
        "feedworker": run_one(feedworker_text, chosen, score_page, repeat),
        "feedworker + site rules, unchecked": run_one(ruled(False), chosen, score_page, repeat),
        "feedworker + site rules": run_one(ruled(True), chosen, score_page, repeat),
    }
    print(f"\n{len(chosen)} of {len(pages)} aeb pages have a rule file in {folder}")
    print_table("aeb, pages with a rule file", table, summarise)
    print(rule_usage(chosen, rules_of))
    auto, *with_rules = table.values()
    for name, results in zip(list(table)[1:], with_rules, strict=True):
        pairs = list(zip(auto, results, strict=True))
        better = sum(r.f1 > a.f1 + 0.005 for a, r in pairs)
        worse = sorted(
            ((a, r) for a, r in pairs if r.f1 < a.f1 - 0.005), key=lambda p: p[1].f1 - p[0].f1
        )
        print(f"\n{name}: {better} pages better, {len(worse)} worse than without rules")
        for a, r in worse:
            url = next(page.url for page in chosen if page.id == a.id)
            print(f"  {rules_of[url].name + '.txt':<28} {a.id[:12]}  F1 {a.f1:.3f} -> {r.f1:.3f}")


def rule_usage(pages: list, rules_of: dict) -> str:
    """How the rules fared: their body used, matching nothing (rules age), or overruled."""
    from worker.extract import ExtractOptions

    used = missed = overruled = 0
    for page in pages:
        try:
            article = extract(page.html, page.url, ExtractOptions(site_rules=rules_of[page.url]))
        except ExtractError:
            continue
        rule = article.site_rule
        used += bool(rule and rule.body_used)
        missed += bool(rule and "body" in rule.missed)
        overruled += bool(rule and rule.note)
    return (
        f"\nthe rule's body: used on {used} pages, matched nothing on {missed}, looked worse"
        f" than automatic extraction on {overruled}; the other pages' rules have no body"
    )


if __name__ == "__main__":
    main()
