"""Micro-benchmark of catalog search and item pages.

Times a fixed mix of searches and item pages against the sample catalog and
prints one JSON line: the median milliseconds per operation over the rounds.
A round repeats the mix until it has run for at least MIN_ROUND_S, so that
fast code is timed over many operations and slow code does not run for long.

    python bench/bench_catalog.py
"""

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shop import inventory  # noqa: E402
from shop.catalog import Catalog  # noqa: E402

ROUNDS = 12
MIN_ROUND_S = 0.002
QUERIES = ("red wool", "linen", "oak chair")
SKUS = ("SKU-00042", "SKU-04242", "SKU-07999", "BND-0003")


def one_mix(catalog):
    for query in QUERIES:
        catalog.search(query)
    for sku in SKUS:
        catalog.page(sku)
    return len(QUERIES) + len(SKUS)


def main():
    catalog = Catalog(inventory.load_items("sample"))
    one_mix(catalog)  # warm-up
    per_operation = []
    for _ in range(ROUNDS):
        operations, started = 0, time.perf_counter()
        while operations == 0 or time.perf_counter() - started < MIN_ROUND_S:
            operations += one_mix(catalog)
        per_operation.append((time.perf_counter() - started) * 1000 / operations)
    median = statistics.median(per_operation)
    result = {"metric": "catalog_search_ms", "value": round(median, 5), "unit": "ms"}
    result.update(lower_is_better=True, rounds=ROUNDS)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
