"""Catalog search and item pages on the sample data."""

import pytest

from shop import inventory
from shop.catalog import Catalog, UnknownSku


@pytest.fixture(scope="module")
def catalog():
    return Catalog(inventory.load_items("sample"))


def test_search_finds_items_having_every_word(catalog):
    results = catalog.search("red wool")
    assert results
    assert all({"red", "wool"} <= set(result["name"].split()) for result in results)


def test_search_results_are_ordered_by_sku_and_limited(catalog):
    results = catalog.search("cotton", limit=7)
    skus = [result["sku"] for result in results]
    assert len(skus) == 7
    assert skus == sorted(skus)


def test_search_ignores_case_and_unknown_words_match_nothing(catalog):
    assert catalog.search("NAVY Linen Cap") == catalog.search("navy linen cap")
    assert catalog.search("navy unicorn") == []
    assert catalog.search("   ") == []


def test_search_rejects_a_limit_out_of_range(catalog):
    with pytest.raises(ValueError):
        catalog.search("red", limit=0)


def test_item_page_has_price_and_related_items(catalog):
    page = catalog.page("SKU-00001")
    assert page["name"] == "red cotton shirt"
    assert page["price"] == 5.0
    related = [other["sku"] for other in page["related"]]
    assert related == ["SKU-00002", "SKU-00022", "SKU-00402", "SKU-02004", "SKU-04008"]
    assert page["parts"] == []


def test_bundle_page_lists_its_parts(catalog):
    page = catalog.page("BND-0001")
    assert len(page["parts"]) == 3
    assert all(part["sku"].startswith("SKU-") for part in page["parts"])


def test_unknown_sku_is_reported(catalog):
    with pytest.raises(UnknownSku):
        catalog.page("SKU-99999")
