"""Importing this module registers every built-in beat handler."""

from __future__ import annotations

from states.deploy import beats as deploy_beats
from states.deploy import rollback_beats
from states.detect import beats as detect_beats
from states.diagnose import beats as diagnose_beats
from states.diagnose import component_beat, verdict_beat
from states.fix import beats as fix_beats
from states.learn import beats as learn_beats
from states.registry import handler_names
from states.telemetry import ingest
from states.validate import beats as validate_beats

MODULES = (
    ingest,
    detect_beats,
    component_beat,
    diagnose_beats,
    verdict_beat,
    fix_beats,
    validate_beats,
    deploy_beats,
    rollback_beats,
    learn_beats,
)

__all__ = ["MODULES", "handler_names"]
