"""Phase definitions as data: each phase is an ordered list of beats in JSON.

Kept as data so operators can add, remove or reorder beats without touching code.
"""
