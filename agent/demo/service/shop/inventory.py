"""The items the shop sells, generated deterministically.

The storefront's data comes in two sets. ``sample`` (the default) is what tests
and local runs use. ``production`` (``SHOP_DATA=production``) also carries the
gift bundles imported from the legacy storefront, whose parts were recorded with
lower-case SKUs by the old system.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

COLOURS = tuple(
    "red blue green black white grey navy olive amber ivory"
    " teal coral plum sand rust mint slate cream ruby jade".split()
)
MATERIALS = tuple(
    "cotton linen wool denim leather silk canvas bamboo cork oak"
    " steel glass ceramic felt suede hemp jute copper marble walnut".split()
)
KINDS = tuple(
    "shirt scarf bag cap mug lamp chair wallet belt jacket"
    " vase bowl tray stool blanket pillow apron sock glove basket".split()
)
PRODUCTS = len(COLOURS) * len(MATERIALS) * len(KINDS)
SAMPLE_BUNDLES = 5
LEGACY_BUNDLES = 20


@dataclass(frozen=True)
class Item:
    """One sellable item. A bundle lists the SKUs of the items it is made of."""

    sku: str
    name: str
    price_cents: int
    related: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()


def product_sku(number: int) -> str:
    """The canonical SKU of product ``number`` (0-based)."""
    return f"SKU-{number + 1:05d}"


def products() -> list[Item]:
    """Every single product: one per colour, material and kind."""
    combinations = list(itertools.product(COLOURS, MATERIALS, KINDS))
    count = len(combinations)
    items = []
    for number, (colour, material, kind) in enumerate(combinations):
        related = tuple(product_sku((number + step) % count) for step in (1, 21, 401, 2003, 4007))
        price = 500 + (number * 37) % 20000
        items.append(Item(product_sku(number), f"{colour} {material} {kind}", price, related))
    return items


def bundles(count: int, first: int, legacy: bool) -> list[Item]:
    """Gift bundles of three products; legacy ones reference parts by lower-case SKU."""
    made = []
    for offset in range(count):
        number = first + offset
        parts = tuple(product_sku((number * 13 + step * 97) % PRODUCTS) for step in range(3))
        if legacy:
            parts = tuple(part.lower() for part in parts)
        made.append(
            Item(f"BND-{number:04d}", f"gift bundle {number}", 4900 + number * 10, (), parts)
        )
    return made


def legacy_bundle_skus() -> list[str]:
    """SKUs of the bundles that only the production data set contains."""
    return [item.sku for item in bundles(LEGACY_BUNDLES, 9001, legacy=True)]


def load_items(dataset: str | None = None) -> list[Item]:
    """The items of ``dataset`` (``sample`` or ``production``; default from ``SHOP_DATA``)."""
    chosen = dataset or os.environ.get("SHOP_DATA", "sample")
    if chosen not in ("sample", "production"):
        raise ValueError(f"SHOP_DATA must be 'sample' or 'production', not {chosen!r}")
    items = products() + bundles(SAMPLE_BUNDLES, 1, legacy=False)
    if chosen == "production":
        items += bundles(LEGACY_BUNDLES, 9001, legacy=True)
    return items
