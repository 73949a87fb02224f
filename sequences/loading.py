"""Loading phase definitions, failing early and precisely.

A sequence that names a handler or phase that does not exist must stop the
agent at start-up (and ``selfheal check``) with the file and beat named, not
in the middle of an incident.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from sequences.schema import SequenceSpec


class SequenceError(Exception):
    """A sequence file is unusable; the message names the file, the beat and the problem."""


def bundled_folder() -> Path:
    """The folder of sequences shipped with selfheal."""
    return Path(str(resources.files("sequences")))


def _read(path: Path) -> SequenceSpec:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SequenceError(f"{path}: cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SequenceError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:  # a number of 4300+ digits; nesting past the stack
        raise SequenceError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return SequenceSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise SequenceError(f"{path}: {where}: {first['msg']}") from exc


def _check(
    path: Path, spec: SequenceSpec, handlers: Collection[str], phases: Collection[str]
) -> None:
    if spec.phase not in phases:
        raise SequenceError(
            f"{path}: phase {spec.phase!r} is not a state of the machine "
            f"(expected one of: {', '.join(sorted(phases))})"
        )
    seen: set[str] = set()
    for beat in spec.beats:
        if beat.id in seen:
            raise SequenceError(f"{path}: beat {beat.id!r} appears twice")
        seen.add(beat.id)
        if beat.handler not in handlers:
            raise SequenceError(
                f"{path}: beat {beat.id!r} names handler {beat.handler!r}, which does not exist "
                f"(known handlers: {', '.join(sorted(handlers))})"
            )


def load_sequences(
    folder: Path,
    *,
    handlers: Collection[str],
    phases: Collection[str],
    required: Collection[str] = (),
) -> dict[str, SequenceSpec]:
    """Every ``phase-*.json`` in ``folder``, checked, by phase."""
    if not folder.is_dir():
        raise SequenceError(f"{folder}: sequences folder does not exist")
    by_phase: dict[str, SequenceSpec] = {}
    origin: dict[str, Path] = {}
    for path in sorted(folder.glob("phase-*.json")):
        spec = _read(path)
        _check(path, spec, handlers, phases)
        if spec.phase in by_phase:
            raise SequenceError(
                f"{path}: phase {spec.phase!r} is already defined by {origin[spec.phase].name}"
            )
        by_phase[spec.phase] = spec
        origin[spec.phase] = path
    missing = sorted(set(required) - set(by_phase))
    if missing:
        raise SequenceError(f"{folder}: no sequence defines the phase(s) {', '.join(missing)}")
    return by_phase


def sequence_json_schema() -> dict[str, object]:
    """The JSON Schema of a sequence file."""
    return SequenceSpec.model_json_schema()
