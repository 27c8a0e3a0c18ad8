"""Read the rule folders the operator names (`[worker] site_rules`) into a `RuleLibrary`.

Called by the config loader (`worker.config`), so rules are read once per config load and
reloaded with it; the extractor never reads files, it is handed a page's `RuleSet`.

Every `*.txt` whose name is a host name (or `global.txt`) is a rule file; other files
(`LICENSE.txt`, `README.md`) are passed over. A file that cannot be read or decoded, or that
holds bad lines, is reported (`RuleLibrary.problems`, each with its file and line) and the rest
of it, and every other file, is still used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from worker.siterules.lookup import RuleFolder, RuleLibrary, is_rule_name
from worker.siterules.parse import RuleProblem, RuleSet, parse_rules

__all__ = ["MAX_RULE_FILE_BYTES", "load_rule_folders", "read_rule_file"]

# The largest upstream file is about 10 KiB; a bigger one is not a rule file.
MAX_RULE_FILE_BYTES = 256 * 1024


def load_rule_folders(folders: Sequence[Path | str], *, use_global: bool = False) -> RuleLibrary:
    """The rules of every folder in `folders`, in that order (missing folders read as empty:
    the config loader reports them)."""
    digest = hashlib.sha256()
    loaded: list[RuleFolder] = []
    problems: list[RuleProblem] = []
    for folder in folders:
        rules: dict[str, RuleSet] = {}
        for path in _rule_files(Path(folder)):
            raw, rule_set = read_rule_file(path)
            rules[rule_set.name] = rule_set
            problems.extend(rule_set.problems)
            name = str(path).encode()
            digest.update(len(name).to_bytes(8, "big") + name)
            digest.update(len(raw).to_bytes(8, "big") + raw)
        loaded.append(RuleFolder(str(folder), MappingProxyType(rules)))
    fingerprint = digest.hexdigest() if folders else ""
    return RuleLibrary(tuple(loaded), use_global, tuple(problems), fingerprint)


def _rule_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [
        p for p in entries if p.suffix == ".txt" and is_rule_name(p.stem.lower()) and p.is_file()
    ]


def read_rule_file(path: Path) -> tuple[bytes, RuleSet]:
    """A file's bytes and its rule set; one that cannot be read is an empty set with a problem."""
    name, shown = path.stem.lower(), str(path)
    try:
        size = path.stat().st_size
        if size > MAX_RULE_FILE_BYTES:
            message = f"{size:,} bytes, more than a rule file's {MAX_RULE_FILE_BYTES:,}: skipped"
            return b"", RuleSet(name, shown, problems=(RuleProblem(shown, 0, message),))
        raw = path.read_bytes()
    except OSError as exc:
        problem = RuleProblem(shown, 0, f"cannot read: {exc.strerror or exc}")
        return b"", RuleSet(name, shown, problems=(problem,))
    text, bad_line = _decode(raw)
    rules = parse_rules(text, name, shown)
    if bad_line:
        problem = RuleProblem(shown, bad_line, "not valid UTF-8; bad bytes replaced")
        rules = replace(rules, problems=(*rules.problems, problem))
    return raw, rules


def _decode(raw: bytes) -> tuple[str, int]:
    """The text, and the line of the first byte that is not UTF-8 (0 when all is well)."""
    try:
        return raw.decode("utf-8-sig"), 0
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8-sig", errors="replace"), raw.count(b"\n", 0, exc.start) + 1
