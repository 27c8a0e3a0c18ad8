"""Site rules: FiveFilters' `ftr-site-config` format, read natively.

    from worker.siterules import RuleLibrary, RuleSet, apply_rules
    from worker.siterules.load import load_rule_folders

- `parse` one file's text -> `RuleSet` (frozen; bad lines become `RuleProblem`s with their line);
- `lookup` host -> `RuleSet` in the format's order (`RuleLibrary.for_url`);
- `apply` a `RuleSet` to one page's HTML -> `RuleResult` (XPath 1.0 through lxml);
- `load` the operator's folders -> `RuleLibrary` (the config loader calls it; the only part that
  reads files).

Everything but `load` is pure, and the names above leave it out: extraction never reads files.
The extractor gets a page's `RuleSet` as data (`ExtractOptions.site_rules`) and applies it with
`apply_rules` before automatic extraction.
"""

from worker.siterules.apply import RuleResult, apply_rules
from worker.siterules.lookup import EMPTY_LIBRARY, RuleLibrary, candidate_names
from worker.siterules.parse import (
    LinkRule,
    Replacement,
    RuleProblem,
    RuleSet,
    RuleTest,
    parse_rules,
)

__all__ = [
    "EMPTY_LIBRARY",
    "LinkRule",
    "Replacement",
    "RuleLibrary",
    "RuleProblem",
    "RuleResult",
    "RuleSet",
    "RuleTest",
    "apply_rules",
    "candidate_names",
    "parse_rules",
]
