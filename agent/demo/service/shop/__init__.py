"""shop: a small storefront API (catalog, cart, auth) served over HTTP."""
