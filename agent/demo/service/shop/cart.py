"""Cart: the items each shopper intends to buy, kept in memory per instance."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

MAX_QUANTITY = 20
MAX_LINES = 100
SKU_PATTERN = re.compile(r"^[A-Z]{3}-\d{4,5}$")


class CartError(ValueError):
    """The request cannot be applied to the cart; the message says why."""


@dataclass
class Cart:
    """One shopper's cart: quantity per SKU, in the order lines were added."""

    lines: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"lines": len(self.lines), "items": sum(self.lines.values())}


class Carts:
    """Every shopper's cart, safe to use from several request threads."""

    def __init__(self) -> None:
        self._carts: dict[str, Cart] = {}
        self._lock = threading.Lock()

    def add(self, user: str, sku: str, quantity: int) -> dict[str, object]:
        """Add ``quantity`` of ``sku``; a line never exceeds MAX_QUANTITY."""
        if not SKU_PATTERN.match(sku):
            raise CartError(f"not a SKU: {sku!r}")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise CartError(f"quantity must be between 1 and {MAX_QUANTITY}")
        with self._lock:
            cart = self._carts.setdefault(user, Cart())
            if sku not in cart.lines and len(cart.lines) >= MAX_LINES:
                raise CartError(f"a cart holds at most {MAX_LINES} lines")
            cart.lines[sku] = min(cart.lines.get(sku, 0) + quantity, MAX_QUANTITY)
            return cart.as_dict()

    def view(self, user: str) -> dict[str, object]:
        """The cart of ``user`` (empty if they never added anything)."""
        with self._lock:
            return self._carts.get(user, Cart()).as_dict()
