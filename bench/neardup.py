"""Where the near-duplicate threshold comes from: SimHash distances on real article bodies.

    .venv/bin/python -m bench.neardup [--data ../shared/bench] [--shingles 2 3 4]

Takes the body text feedworker extracts from each page of the shared `aeb` set, makes the
syndicated copies an operator sees (a new headline line, a different footer line, three sentences
rewritten, all three at once) and measures the Hamming distance of each copy's SimHash to the
original's. Negatives are every pair of two different articles, and separately the pairs from
one site (the same template and often the same topic). The default threshold must sit between
the copies' high percentiles and the negatives' minimum.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from worker.dedupe import simhash as simhash_mod
from worker.dedupe.content import normalise_text
from worker.errors import ExtractError
from worker.extract import extract

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "bench"
HEADLINE = "Exclusive report: what this week's news means for you and your family"
FOOTER = "This story first appeared on The Example Courier and is republished with permission."
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def bodies(data: Path) -> list[tuple[str, str]]:
    truth = json.loads((data / "aeb" / "ground-truth.json").read_text())
    found = []
    for path in sorted((data / "aeb" / "html").glob("*.html.gz")):
        key = path.name.removesuffix(".html.gz")
        url = truth.get(key, {}).get("url", f"https://example.org/{key}")
        try:
            text = extract(gzip.decompress(path.read_bytes()).decode("utf-8", "replace"), url)
        except ExtractError:
            continue
        if len(text.body_text.split()) >= 80:  # a teaser is not an article
            found.append((urlsplit(url).hostname or "", text.body_text))
    return found


def variants(text: str, donor: str, rng: random.Random) -> dict[str, str]:
    sentences = _SENTENCE.split(text)
    donors = _SENTENCE.split(donor)
    chosen = rng.sample(range(len(sentences)), min(3, len(sentences)))
    edited, replaced = list(sentences), list(sentences)
    for index in chosen:
        words = edited[index].split()
        for _ in range(2):  # a changed figure, a reworded phrase
            words[rng.randrange(len(words))] = rng.choice(("several", "2025", "officials", "new"))
        edited[index] = " ".join(words)
        replaced[index] = rng.choice(donors)
    return {
        "new headline": f"{HEADLINE}\n{text}",
        "other footer": f"{text}\n{FOOTER}",
        "3 sentences edited": " ".join(edited),
        "3 sentences replaced": " ".join(replaced),
        "headline + footer + 3 edited": f"{HEADLINE}\n{' '.join(edited)}\n{FOOTER}",
    }


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _share(values: list[int], limit: int) -> float:
    return sum(v <= limit for v in values) / len(values)


def measure(articles: list[tuple[str, str]], shingles: int, min_words: int) -> None:
    articles = [a for a in articles if len(a[1].split()) >= min_words]
    simhash_mod.SHINGLE_WORDS = shingles
    rng = random.Random(8)
    hashes = [simhash_mod.simhash(normalise_text(text)) for _, text in articles]
    copies: dict[str, list[int]] = defaultdict(list)
    for i, (_, text) in enumerate(articles):
        donor = articles[(i + 1) % len(articles)][1]
        for name, copy in variants(text, donor, rng).items():
            copies[name].append(
                simhash_mod.hamming(hashes[i], simhash_mod.simhash(normalise_text(copy)))
            )
    unrelated, same_site = [], []
    for i in range(len(articles)):
        for j in range(i + 1, len(articles)):
            distance = simhash_mod.hamming(hashes[i], hashes[j])
            (same_site if articles[i][0] == articles[j][0] else unrelated).append(distance)
    print(f"\n{shingles}-word shingles, {len(articles)} articles of {min_words}+ words")
    print("| pairs | n | median | p95 | p99 | max | min | within 7 | within 10 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, values in [
        *copies.items(),
        ("different articles, one site", same_site),
        ("different articles, any site", unrelated),
    ]:
        if values:
            print(
                f"| {name} | {len(values)} | {statistics.median(values):g} |"
                f" {percentile(values, 0.95)} | {percentile(values, 0.99)} | {max(values)} |"
                f" {min(values)} | {_share(values, 7):.0%} | {_share(values, 10):.0%} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--shingles", type=int, nargs="+", default=[2, 3, 4])
    args = parser.parse_args()
    articles = bodies(args.data)
    for shingles in args.shingles:
        for min_words in (80, 300):
            measure(articles, shingles, min_words)


if __name__ == "__main__":
    main()
