"""Persistence: the only layer that talks to the database.

The database is the source of truth for the machine, so every write that
changes what the agent believes happens here, in one transaction.
"""
