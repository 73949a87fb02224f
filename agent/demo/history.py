"""The demo repository's story as data: who changed what, when, and the release that regresses.

The demo must show the agent reading real history, so the shop's repository
has several authors, spaced dates, each commit touching its own files. Then a
release adds three commits, one of which (``catalog: support case-insensitive
SKU lookup``) makes catalog requests tens of times slower without breaking a
test, so only telemetry and the benchmark reveal it.

Each commit is plain data (template files it adds, edits that each replace one
exact occurrence), kept apart from the git plumbing in ``workspace`` that
replays it, so the story reads in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

CULPRIT_FILE = "shop/catalog.py"


@dataclass(frozen=True)
class Author:
    """Who wrote a commit."""

    name: str
    email: str


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of ``old`` in ``path`` with ``new``."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Change:
    """One commit: template files it adds and edits it makes, by whom and how long ago."""

    author: Author
    message: str
    age: timedelta
    adds: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()


ALICE = Author("Alice Moreau", "alice.moreau@shop.example")
BILAL = Author("Bilal Haddad", "bilal.haddad@shop.example")
CHEN = Author("Chen Wei", "chen.wei@shop.example")
DANA = Author("Dana Okafor", "dana.okafor@shop.example")

HISTORY: tuple[Change, ...] = (
    Change(
        ALICE,
        "Shop service: catalog, cart and auth behind one HTTP server\n\n"
        "Standard library only, one JSON log line per request.",
        timedelta(days=31, hours=4),
        adds=(
            ".gitignore",
            "pyproject.toml",
            "shop/__init__.py",
            "shop/inventory.py",
            "shop/catalog.py",
            "shop/cart.py",
            "shop/auth.py",
            "shop/server.py",
            "tests/test_catalog.py",
            "tests/test_server.py",
        ),
    ),
    Change(
        BILAL,
        "cart: tests for limits and shopper isolation",
        timedelta(days=27, hours=7, minutes=12),
        adds=("tests/test_cart.py",),
    ),
    Change(
        CHEN,
        "auth: tolerate 30 s of clock skew between instances\n\n"
        "Tokens issued by one instance were rejected by another whose clock ran ahead.",
        timedelta(days=22, hours=2, minutes=40),
        adds=("tests/test_auth.py",),
        edits=(
            Edit("shop/auth.py", "TOKEN_TTL_S = 3600\n", "TOKEN_TTL_S = 3600\nCLOCK_SKEW_S = 30\n"),
            Edit("shop/auth.py", "if expiry < (", "if expiry + CLOCK_SKEW_S < ("),
        ),
    ),
    Change(
        DANA,
        "docs: how to run and develop the shop",
        timedelta(days=18, hours=5, minutes=3),
        adds=("README.md",),
    ),
    Change(
        BILAL,
        "cart: allow up to 20 of an item per line",
        timedelta(days=12, hours=1, minutes=55),
        edits=(Edit("shop/cart.py", "MAX_QUANTITY = 10\n", "MAX_QUANTITY = 20\n"),),
    ),
    Change(
        ALICE,
        "bench: micro-benchmark for catalog search and item pages",
        timedelta(days=6, hours=3, minutes=21),
        adds=("bench/bench_catalog.py",),
    ),
    Change(
        CHEN,
        "server: log request durations with microsecond precision",
        timedelta(days=3, hours=6, minutes=8),
        edits=(
            Edit(
                "shop/server.py",
                "duration_ms = round((time.perf_counter() - started) * 1000, 1)",
                "duration_ms = round((time.perf_counter() - started) * 1000, 3)",
            ),
        ),
    ),
)

_CASE_INSENSITIVE_RESOLVE = """    def _resolve(self, sku: str) -> Item:
        # Bundles imported from the legacy storefront reference their parts by
        # lower-case SKU, so compare SKUs the way people type them.
        wanted = normalized_sku(sku)
        matches = [item for item in self._items if normalized_sku(item.sku) == wanted]
        if not matches:
            raise UnknownSku(sku)
        # Prefer the canonical (upper-case) spelling if both were imported.
        return min(matches, key=lambda item: item.sku != item.sku.upper())
"""

_NORMALIZED_SKU = '''def normalized_sku(sku: str) -> str:
    """The comparable form of a SKU: compatibility-normalized, trimmed, upper-case."""
    return unicodedata.normalize("NFKC", sku).strip().upper()


def words(text: str)'''

RELEASE: tuple[Change, ...] = (
    Change(
        DANA,
        "auth: treat the Bearer scheme case-insensitively (RFC 7235)",
        timedelta(hours=3, minutes=10),
        edits=(Edit("shop/auth.py", 'if scheme != "Bearer"', 'if scheme.lower() != "bearer"'),),
    ),
    Change(
        CHEN,
        "catalog: support case-insensitive SKU lookup\n\n"
        "Bundles imported from the legacy storefront list their parts as\n"
        "'sku-00042'; item pages for them failed. Normalize SKUs before comparing.",
        timedelta(hours=2, minutes=4),
        edits=(
            Edit(
                CULPRIT_FILE,
                "from collections.abc import Iterable\n",
                "import unicodedata\nfrom collections.abc import Iterable\n",
            ),
            Edit(CULPRIT_FILE, "def words(text: str)", _NORMALIZED_SKU),
            Edit(
                CULPRIT_FILE,
                "        if sku not in self._by_sku:\n            raise UnknownSku(sku)\n",
                "",
            ),
            Edit(
                CULPRIT_FILE,
                "    def _resolve(self, sku: str) -> Item:\n        return self._by_sku[sku]\n",
                _CASE_INSENSITIVE_RESOLVE,
            ),
        ),
    ),
    Change(
        BILAL,
        "cart: name the SKU in quantity errors",
        timedelta(hours=1, minutes=2),
        edits=(
            Edit(
                "shop/cart.py",
                'raise CartError(f"quantity must be between',
                'raise CartError(f"quantity of {sku} must be between',
            ),
        ),
    ),
)
CULPRIT_INDEX = 1
"""Where the culprit sits in ``RELEASE``."""
