"""Composition root: the command line, the daemon, one engine tick, settings and logging.

Only this layer knows about the scheduler, the CLI parser and how structlog is
configured; everything below it receives what it needs explicitly.
"""
