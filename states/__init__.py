"""The state machine and one package per phase of the healing loop.

Phases are plain domain logic plus adapters at the edges; the engine in
``agent`` drives them through the beats declared in ``sequences``.
"""
