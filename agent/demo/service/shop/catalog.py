"""Catalog: full-text search over item names and item pages.

Search and item pages are the hottest paths of the storefront, so both are
answered from indexes built once at start-up: a word index for search and a
SKU index for lookups.
"""

from __future__ import annotations

from collections.abc import Iterable

from shop.inventory import Item

DEFAULT_LIMIT = 20
MAX_LIMIT = 50


class UnknownSku(KeyError):
    """No item has the requested SKU."""


def summary(item: Item) -> dict[str, object]:
    """The short form of an item used in lists."""
    return {"sku": item.sku, "name": item.name, "price": item.price_cents / 100}


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, as indexed and searched."""
    return [word for word in text.lower().split() if word.isalnum()]


class Catalog:
    """Every item the shop sells, indexed for search and lookup."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = list(items)
        self._by_sku = {item.sku: item for item in self._items}
        self._by_word: dict[str, set[str]] = {}
        for item in self._items:
            for word in words(item.name):
                self._by_word.setdefault(word, set()).add(item.sku)

    def __len__(self) -> int:
        return len(self._items)

    def search(self, query: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, object]]:
        """Items whose name contains every word of ``query``, by SKU."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        wanted = words(query)
        if not wanted:
            return []
        matches = set.intersection(*(self._by_word.get(word, set()) for word in wanted))
        return [summary(self._resolve(sku)) for sku in sorted(matches)[:limit]]

    def page(self, sku: str) -> dict[str, object]:
        """An item with its related items and, for a bundle, its parts."""
        if sku not in self._by_sku:
            raise UnknownSku(sku)
        item = self._resolve(sku)
        page = summary(item)
        page["related"] = [summary(self._resolve(other)) for other in item.related]
        page["parts"] = [summary(self._resolve(part)) for part in item.parts]
        return page

    def _resolve(self, sku: str) -> Item:
        return self._by_sku[sku]
