"""One vocabulary each for what travels as a word: extraction methods, skip kinds, store decisions
(`worker.models`), checked by mypy wherever they are written and here where they are read."""

from __future__ import annotations

from typing import get_args

from worker.errors import AddressBlocked, FeedworkerError
from worker.extract.article import METHOD_NOTES, describe_method
from worker.models import Decision, Method, SkipKind
from worker.service.health import SKIP_KINDS


def test_every_extraction_method_says_what_it_means() -> None:
    assert set(METHOD_NOTES) == set(get_args(Method))
    assert all(describe_method(method) for method in get_args(Method))


def test_skip_kinds_are_the_models_vocabulary() -> None:
    assert get_args(SkipKind) == SKIP_KINDS
    assert len(set(SKIP_KINDS)) == len(SKIP_KINDS)  # metric labels: each once


def test_store_decisions_are_one_set_of_words() -> None:
    assert set(get_args(Decision)) == {
        "new",
        "updated",
        "unchanged",
        "duplicate",
        "near-duplicate",
        "filtered",
        "skipped",
    }


def test_the_ssrf_guards_refusal_is_one_of_the_projects_errors() -> None:
    assert issubclass(AddressBlocked, FeedworkerError)
    assert AddressBlocked("blocked address 10.0.0.1").reason == "blocked address 10.0.0.1"
