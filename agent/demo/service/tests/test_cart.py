"""Carts: adding items, limits, and isolation between shoppers."""

import pytest

from shop.cart import MAX_LINES, MAX_QUANTITY, CartError, Carts


def test_adding_items_counts_lines_and_quantities():
    carts = Carts()
    carts.add("ann", "SKU-00001", 2)
    assert carts.add("ann", "SKU-00002", 1) == {"lines": 2, "items": 3}


def test_a_line_never_exceeds_the_quantity_limit():
    carts = Carts()
    carts.add("ann", "SKU-00001", MAX_QUANTITY)
    assert carts.add("ann", "SKU-00001", 1) == {"lines": 1, "items": MAX_QUANTITY}


def test_carts_of_different_shoppers_are_separate():
    carts = Carts()
    carts.add("ann", "SKU-00001", 1)
    assert carts.view("bob") == {"lines": 0, "items": 0}


BAD_ADDITIONS = [("nonsense", 1), ("SKU-00001", 0), ("SKU-00001", MAX_QUANTITY + 1)]


@pytest.mark.parametrize(("sku", "quantity"), BAD_ADDITIONS)
def test_bad_additions_are_rejected(sku, quantity):
    with pytest.raises(CartError):
        Carts().add("ann", sku, quantity)


def test_a_full_cart_accepts_no_new_line():
    carts = Carts()
    for number in range(MAX_LINES):
        carts.add("ann", f"SKU-{number + 1:05d}", 1)
    with pytest.raises(CartError):
        carts.add("ann", "SKU-09999", 1)
