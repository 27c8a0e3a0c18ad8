"""Which rule file serves a host: the format's lookup order, folders in the operator's order,
`global.txt` only when enabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.siterules import candidate_names
from worker.siterules.load import load_rule_folders


@pytest.mark.parametrize(
    ("host", "names"),
    [
        ("example.com", ("example.com",)),
        ("www.example.com", ("www.example.com", "example.com")),
        ("news.example.com", ("news.example.com", ".example.com")),
        (
            "a.b.example.co.uk",
            ("a.b.example.co.uk", ".b.example.co.uk", ".example.co.uk", ".co.uk"),
        ),
        ("WWW.Example.COM.", ("www.example.com", "example.com")),
        ("127.0.0.1", ("127.0.0.1",)),
        ("localhost", ()),
        ("", ()),
    ],
)
def test_candidate_names_most_specific_first(host: str, names: tuple[str, ...]) -> None:
    assert candidate_names(host) == names


def folder(root: Path, name: str, files: dict[str, str]) -> Path:
    path = root / name
    path.mkdir()
    for file_name, text in files.items():
        (path / file_name).write_text(text)
    return path


def test_lookup_order_and_subdomain_files(tmp_path: Path) -> None:
    rules = folder(
        tmp_path,
        "rules",
        {
            "example.com.txt": "body: //div[@id='bare']\n",
            ".example.com.txt": "body: //div[@id='sub']\n",
            "news.example.com.txt": "body: //div[@id='news']\n",
        },
    )
    library = load_rule_folders([rules])

    def body(url: str) -> str | None:
        found = library.for_url(url)
        return found.body[0] if found else None

    assert body("https://example.com/a") == "//div[@id='bare']"
    assert body("https://www.example.com/a") == "//div[@id='bare']"  # www. is the bare host
    assert body("https://news.example.com/a") == "//div[@id='news']"  # its own file wins
    assert body("https://sport.example.com/a") == "//div[@id='sub']"
    assert body("https://a.b.example.com/a") == "//div[@id='sub']"
    assert body("https://www.sport.example.com/a") == "//div[@id='sub']"
    assert body("https://example.org/a") is None
    assert body("https://notexample.com/a") is None


def test_the_wildcard_file_never_serves_the_domain_itself(tmp_path: Path) -> None:
    library = load_rule_folders([folder(tmp_path, "r", {".example.com.txt": "body: //main\n"})])
    assert library.for_host("example.com") is None
    assert library.for_host("www.example.com") is None
    assert library.for_host("blog.example.com") is not None


def test_operator_folder_is_searched_whole_before_the_shared_one(tmp_path: Path) -> None:
    own = folder(tmp_path, "own", {".example.com.txt": "body: //div[@id='mine']\n"})
    shared = folder(
        tmp_path,
        "shared",
        {"news.example.com.txt": "body: //div[@id='theirs']\n", "example.org.txt": "body: //x\n"},
    )
    library = load_rule_folders([own, shared])
    found = library.for_host("news.example.com")
    assert found is not None and found.body == ("//div[@id='mine']",)
    assert found.path == str(own / ".example.com.txt")
    assert library.for_host("example.org") is not None  # the shared folder still serves the rest
    assert [r.name for r in library.all_rules()] == [
        ".example.com",
        "example.org",
        "news.example.com",
    ]


def test_global_rules_only_when_enabled_and_after_the_hosts_own(tmp_path: Path) -> None:
    rules = folder(
        tmp_path,
        "r",
        {
            "global.txt": "body: //article\nstrip: //aside\nprune: no\nautodetect_on_failure: no\n",
            "example.com.txt": "body: //div[@id='story']\nprune: yes\n",
        },
    )
    assert load_rule_folders([rules]).for_host("example.org") is None
    library = load_rule_folders([rules], use_global=True)
    merged = library.for_host("example.com")
    assert merged is not None
    assert merged.body == ("//div[@id='story']", "//article")
    assert merged.strip == ("//aside",)
    assert merged.prune is True  # the host's own yes/no wins
    assert merged.autodetect_on_failure is False  # filled in from global where the host is silent
    alone = library.for_host("example.org")
    assert alone is not None and alone.name == "global"


def test_digest_follows_the_files(tmp_path: Path) -> None:
    rules = folder(tmp_path, "r", {"example.com.txt": "body: //article\n"})
    before = load_rule_folders([rules]).digest
    assert load_rule_folders([rules]).digest == before
    (rules / "example.com.txt").write_text("body: //main\n")
    assert load_rule_folders([rules]).digest != before
    assert load_rule_folders([]).digest == ""
