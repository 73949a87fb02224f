"""Code-level diagnosis on real git repositories: blame, changed functions, size, ranking, lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.diagnosis import diagnose
from benchmarks.diagnosis_corpus import generate
from states.diagnose.cues import matches_category
from states.diagnose.culprits import CodeEvidence, LocatedSuspect, diagnose_commits
from states.diagnose.frames import Frame, mapped_frames
from states.diagnose.functions import (
    function_spans,
    functions_at,
    names_frame_function,
    names_operation,
    singular,
)
from states.git import Commit, blame_lines, commit_changes, commits_between

CATALOG = """\
import db


def search(query):
    words = query.split()
    items = db.query("items")
    return [i for i in items if words[0] in i]


class Catalog:
    def price(self, sku):
        row = db.fetch_one(sku)
        return row.price
"""

DB = """\
def query(table):
    return list(table)


def fetch_one(sku):
    return {"sku": sku}
"""


def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Dev", "-c", "user.email=dev@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def commit_files(repo: Path, message: str, **files: str) -> str:
    """Write and commit files named by keyword: ``shop__db_py`` is ``shop/db.py``."""
    for key, text in files.items():
        stem, _, suffix = key.replace("__", "/").rpartition("_")
        path = repo / f"{stem}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    commit_files(path, "start", shop__catalog_py=CATALOG, shop__db_py=DB, README_md="shop\n")
    return path


def evidence_for(
    repo: Path,
    base: str,
    frames: tuple[Frame, ...] = (),
    operations: tuple[str, ...] = (),
    category: str = "",
) -> CodeEvidence:
    """What the beats would gather for the commits since ``base``, catalog as the component."""
    head = run_git(repo, "rev-parse", "HEAD").strip()
    commits = tuple(commits_between(repo, base, head, 50))
    return CodeEvidence(
        commits=commits,
        running_revision=head,
        component_paths=("shop/catalog.py",),
        deployed_commits=frozenset(c.sha for c in commits),
        frames=frames,
        operations=operations,
        category=category,
    )


def by_sha(located: list[LocatedSuspect], sha: str) -> LocatedSuspect:
    return next(s for s in located if s.suspect.commit.sha == sha)


# --- blame -------------------------------------------------------------------------------------------


def test_blame_names_the_commit_that_last_changed_each_line(repo: Path) -> None:
    first = run_git(repo, "rev-parse", "HEAD").strip()
    tweak = commit_files(repo, "tweak", shop__catalog_py=CATALOG.replace("split()", "split(',')"))
    moved = commit_files(
        repo, "header", shop__catalog_py='"""Catalog."""\n' + (repo / "shop/catalog.py").read_text()
    )

    blamed = blame_lines(repo, moved, "shop/catalog.py", [1, 6, 8, 999])

    assert blamed[1].commit == moved
    assert (blamed[6].commit, blamed[6].original_line) == (tweak, 5)  # the line moved down by one
    assert blamed[8].commit == first
    assert 999 not in blamed  # past the end: left out, the others still blamed


def test_a_frame_on_a_line_a_commit_changed_blames_that_commit_and_points_at_its_line(
    repo: Path,
) -> None:
    base = run_git(repo, "rev-parse", "HEAD").strip()
    culprit = commit_files(
        repo, "index words", shop__catalog_py=CATALOG.replace("words[0]", "words[1]")
    )
    other = commit_files(repo, "docs", README_md="shop\nmore\n")
    frames = (
        Frame("/srv/app/shop/catalog.py", 7, "search"),
        Frame("/usr/lib/python3.11/socketserver.py", 720, "__init__"),
    )

    located = diagnose_commits(repo, evidence_for(repo, base, frames=frames, category="errors"))

    top = located[0]
    assert top.suspect.commit.sha == culprit
    assert top.suspect.features["blamed_frame_line"] > 0
    assert (top.file, top.line, top.located_by) == ("shop/catalog.py", 7, "blamed frame line")
    assert by_sha(located, other).suspect.features["blamed_frame_line"] == 0


def test_the_innermost_frame_is_the_one_whose_line_calls_no_other_frame(repo: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD").strip()
    lines = (repo / "shop/catalog.py").read_text().splitlines()
    # Two traces merged as a window keeps them: the order alone would be misleading.
    frames = [
        Frame("shop/db.py", 6, "fetch_one"),
        Frame("shop/catalog.py", 12, "price"),
        Frame("shop/catalog.py", 6, "search"),
        Frame("shop/db.py", 2, "query"),
    ]

    mapped = mapped_frames(
        frames,
        [],
        frozenset({"shop/catalog.py", "shop/db.py"}),
        lambda path, n: (repo / path).read_text().splitlines()[n - 1],
    )

    assert lines[11].strip() == "row = db.fetch_one(sku)"  # it calls fetch_one: outer
    depths = {(m.path, m.line): m.depth for m in mapped}
    assert depths == {
        ("shop/db.py", 6): 0,
        ("shop/db.py", 2): 0,
        ("shop/catalog.py", 12): 1,
        ("shop/catalog.py", 6): 1,
    }
    assert head


# --- diffs and changed functions -------------------------------------------------------------------


def test_commit_changes_count_lines_and_place_deletions(repo: Path) -> None:
    text = CATALOG.replace("    words = query.split()\n", "").replace(
        "        return row.price\n", "        price = row.price\n        return price\n"
    )
    sha = commit_files(repo, "edit", shop__catalog_py=text, docs__a_md="x\n")

    changes = {c.path: c for c in commit_changes(repo, sha)}

    catalog = changes["shop/catalog.py"]
    assert (catalog.added, catalog.removed) == (2, 2)
    assert catalog.lines == (12, 13)
    assert 4 in catalog.touched  # the deletion in search() sits after line 4
    assert catalog.text == ("        price = row.price", "        return price")
    assert changes["docs/a.md"].lines == (1,)


def test_changed_functions_are_found_by_parsing_the_file_at_the_commit(repo: Path) -> None:
    text = CATALOG.replace("return row.price", "return row.price * 2")
    sha = commit_files(repo, "double", shop__catalog_py=text)
    [change] = commit_changes(repo, sha)

    spans = function_spans("shop/catalog.py", text)

    assert functions_at(spans, change.touched) == {"Catalog.price"}
    assert functions_at(spans, [1, 2]) == frozenset()  # imports: in no function


@pytest.mark.parametrize(
    ("path", "text", "line", "name"),
    [
        (
            "src/main/java/com/acme/Cart.java",
            "package com.acme;\n\npublic final class Cart {\n"
            "    public List<Line> addLine(String sku, int n) throws IOException {\n"
            "        if (n < 1) { throw new IllegalArgumentException(); }\n"
            "        return lines.add(sku, n);\n    }\n\n"
            "    int total() { return 1; }\n}\n",
            5,
            "Cart.addLine",
        ),
        (
            "src/cart.js",
            "const db = require('db');\n\nclass Cart {\n  async addLine(sku) {\n"
            "    const rows = await db.query(sku);\n    return rows;\n  }\n}\n\n"
            "const total = (rows) => {\n  return rows.length;\n};\n",
            11,
            "total",
        ),
        (
            "svc/cart.go",
            'package svc\n\nfunc (c *Cart) AddLine(sku string) error {\n\tif sku == "" {\n'
            "\t\treturn nil\n\t}\n\treturn nil\n}\n",
            5,
            "AddLine",
        ),
    ],
)
def test_functions_of_brace_languages_are_located(
    path: str, text: str, line: int, name: str
) -> None:
    assert functions_at(function_spans(path, text), [line]) == {name}


def test_operations_and_frames_name_functions_by_their_words() -> None:
    assert names_operation("Cart.add_line", "POST /cart/add-line")
    assert names_operation("CartService.addLine", "cart.addLine")
    assert not names_operation("get", "GET /cart")  # too common a word to mean anything
    assert not names_operation("add_line", "POST /cart/lines")
    assert names_frame_function("CartService.addLine", "com.acme.cart.CartService.addLine")
    assert not names_frame_function("Other.addLine", "com.acme.cart.CartService.addLine")
    assert names_frame_function("add_line", "add_line")


def test_a_routes_collection_names_the_function_of_one_of_its_members() -> None:
    assert names_operation("Catalog.get_item", "GET /catalog/items/{id}")
    assert names_operation("category_tree", "GET /catalog/categories/tree")
    assert names_operation("InventoryStore.getBatch", "GET /inventory/batches/{id}")
    assert names_operation("UserStore.putAddress", "PUT /users/{user_id}/addresses")
    assert names_operation("order_status", "GET /orders/{id}/status")  # no plural to drop
    assert not names_operation("Catalog.page", "GET /catalog/item")  # another word entirely
    assert [singular(w) for w in ("items", "entries", "boxes", "class", "news")] == [
        "item",
        "entry",
        "box",
        "class",
        "new",
    ]


def test_a_frame_names_its_method_even_when_the_word_is_generic() -> None:
    assert names_frame_function("Db.execute", "com.acme.common.Db.execute")
    assert names_frame_function("run", "run")
    assert not names_operation("Db.execute", "POST /orders/execute")  # an operation's word is not
    assert not names_frame_function("lambda", "<lambda>")  # anonymous code defines nothing


def test_a_commit_changing_the_function_a_slow_operation_names_gets_the_feature(
    repo: Path,
) -> None:
    base = run_git(repo, "rev-parse", "HEAD").strip()
    slow = commit_files(
        repo,
        "search: scan",
        shop__catalog_py=CATALOG.replace("words[0] in i", "any(w in i for w in words)"),
    )
    price = commit_files(
        repo,
        "price: double",
        shop__catalog_py=(repo / "shop/catalog.py")
        .read_text()
        .replace("row.price", "row.price * 2"),
    )

    located = diagnose_commits(repo, evidence_for(repo, base, operations=("GET /catalog/search",)))

    assert by_sha(located, slow).suspect.features["touches_named_functions"] > 0
    assert by_sha(located, price).suspect.features["touches_named_functions"] == 0
    assert located[0].suspect.commit.sha == slow
    assert (located[0].file, located[0].located_by) == (
        "shop/catalog.py",
        "changed a named function",
    )


def test_shared_code_the_component_calls_is_a_suspect_other_code_is_not(repo: Path) -> None:
    base = run_git(repo, "rev-parse", "HEAD").strip()
    shared = commit_files(
        repo, "db: copy rows", shop__db_py=DB.replace("list(table)", "list(table) * 100")
    )
    unrelated = commit_files(repo, "billing", billing__invoice_py="def query(x):\n    return x\n")

    located = diagnose_commits(repo, evidence_for(repo, base))

    assert by_sha(located, shared).suspect.features["touches_called_functions"] > 0
    # Same function name, but the catalog never names the billing module's file.
    assert by_sha(located, unrelated).suspect.features["touches_called_functions"] == 0


# --- size --------------------------------------------------------------------------------------------


def test_size_grows_with_runtime_lines_and_ignores_tests_and_docs(repo: Path) -> None:
    base = run_git(repo, "rev-parse", "HEAD").strip()
    small = commit_files(repo, "small", shop__db_py=DB.replace("list(table)", "tuple(table)"))
    large = commit_files(
        repo,
        "large",
        shop__db_py=DB + "".join(f"\n\ndef f{i}():\n    return {i}\n" for i in range(30)),
    )
    docs = commit_files(
        repo, "docs", README_md="x\n" * 200, tests__test_db_py="def test():\n    pass\n" * 50
    )

    located = diagnose_commits(repo, evidence_for(repo, base))
    size = {
        sha: by_sha(located, sha).suspect.features["change_size"] for sha in (small, large, docs)
    }

    assert size[docs] == 0.0
    assert 0 < size[small] < size[large]


# --- cues --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "category"),
    [
        ("    time.sleep(RETRY_S)", "latency"),
        ("rows = [db.query(x) for x in ids]", "latency"),
        ("const rows = await Promise.all(ids.map((id) => db.fetch(id)));", "latency"),
        ("_CACHE[key] = list(rows)", "memory"),
        ("HISTORY.append((request, rows))", "memory"),
        ("raise ValueError('no price')", "errors"),
        ("int n = Integer.parseInt(parts[1]);", "errors"),
        ('rows = sorted(db.query("SELECT * FROM items"), key=by_price)', "latency"),
        (
            'rows = db.queryAll("items").stream().filter(x -> x.id().equals(id)).toList();',
            "latency",
        ),
        ("rows = rows.filter((x) => rows.includes(x.parent));", "latency"),
        ("rows = [x for x in rows if x.parent in rows]", "latency"),
        ("average = total / len(rows)", "errors"),
        ("long average = total / rows.size();", "errors"),
    ],
)
def test_added_lines_carry_the_cues_of_their_category(line: str, category: str) -> None:
    assert matches_category([line], category)
    others = {"latency", "memory", "errors"} - {category}
    assert not any(matches_category(["total = sum(x.amount for x in rows)"], c) for c in others)
    assert not matches_category([line], "saturation")  # an unknown category has no cues


@pytest.mark.parametrize(
    ("category", "cue", "not_a_cue"),
    [
        ("memory_leak", "_LOOKUP_CACHE[sku] = item", "raise KeyError(sku)"),
        ("new_error_template", "raise KeyError(sku)", "_LOOKUP_CACHE[sku] = item"),
        ("log_spike", "raise KeyError(sku)", "time.sleep(RETRY_S)"),
    ],
)
def test_detection_categories_read_the_cues_of_their_kind(
    category: str, cue: str, not_a_cue: str
) -> None:
    assert matches_category([cue], category)
    assert not matches_category([not_a_cue], category)


@pytest.mark.parametrize(
    ("line", "category"),
    [
        ('log.debug("retrying %s", order_id)', "latency"),  # a word in a message retries nothing
        ('rows = db.query("SELECT * FROM items WHERE owner = ?", owner)', "latency"),  # keyed
        ('rows = db.queryAll("items", owner);', "latency"),  # given a criterion
        ('log.info("cache hit for %s", key)', "memory"),
        ("throw_count = 0", "errors"),  # a name that merely contains a keyword
    ],
)
def test_words_in_strings_and_keyed_lookups_are_no_cues(line: str, category: str) -> None:
    assert not matches_category([line], category)


# --- a generated incident, end to end ---------------------------------------------------------------


def test_generated_incidents_are_diagnosed_to_the_culprit(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "corpus", incidents=9, seed=11, bases_per_language=1)

    outcomes = [diagnose(incident) for incident in corpus]

    assert len({i.language for i in corpus}) == 3
    for incident in corpus:
        assert incident.culprit in incident.release
        assert len(run_git(incident.repo, "log", "--format=%an", incident.head).split("\n")) > 20
    assert sum(o.top1 for o in outcomes) >= 7
    traced = [o for o in outcomes if o.tags["raised_at_change"]]
    assert traced and all(o.top1 and o.line for o in traced)
    # Telemetry that names a line or an operation keeps the culprit among the first three;
    # without either, only the component's paths and the diff's content are left.
    pointed = [o for o in outcomes if o.tags["traced"] or o.tags["operations"]]
    assert len(pointed) >= 6 and all(o.top3 for o in pointed)
    assert sum(o.top3 for o in outcomes) >= 8


def test_commits_carry_authors_and_files(repo: Path) -> None:
    base = run_git(repo, "rev-parse", "HEAD").strip()
    sha = commit_files(repo, "docs", README_md="shop\nmore\n")
    [found] = commits_between(repo, base, sha, 10)
    assert isinstance(found, Commit) and found.files == ("README.md",) and found.author == "Dev"
