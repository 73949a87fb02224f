"""The end-to-end unit of ``make test`` holds exactly the modules that run the demo's fleet.

``tests/support/scheduling.py`` names those modules by file, so a renamed or a
new scenario module would silently run beside another fleet on the other
worker; these checks keep the list and the tree in step.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("xdist")

from tests.support.scheduling import END_TO_END, END_TO_END_MODULES, unit_of

TESTS = Path(__file__).parent
# Building the demo's stage (fleet, load, daemon) or running the demo itself.
RUNS_A_FLEET = re.compile(r"\b(build_stage|run_trial|run_demo)\(|\"demo\", \"--json\"")


def test_every_listed_module_exists() -> None:
    assert sorted(p.name for p in TESTS.glob("test_*.py") if p.name in END_TO_END_MODULES) == (
        sorted(END_TO_END_MODULES)
    )


def test_the_modules_that_run_the_demo_fleet_are_the_listed_ones() -> None:
    running = {p.name for p in TESTS.glob("test_*.py") if RUNS_A_FLEET.search(p.read_text())}
    assert running == END_TO_END_MODULES


def test_a_listed_module_belongs_to_the_end_to_end_unit_and_others_to_their_own() -> None:
    assert unit_of("tests/test_crash_resume.py::test_x") == END_TO_END
    assert unit_of("tests/test_fault_injection.py::test_y[bad-fix]") == END_TO_END
    assert unit_of("tests/test_soak.py::test_z") == "tests/test_soak.py"
    assert unit_of("tests/test_machine.py::TestA::test_b") == "tests/test_machine.py"
