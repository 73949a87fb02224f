"""Shared helpers of the end-to-end tests: a demo-like stage, the daemon, and what they left.

Everything here drives real components (git repositories, SQLite files,
processes on 127.0.0.1); nothing is mocked.
"""
