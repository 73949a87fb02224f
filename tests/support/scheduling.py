"""How ``make test`` shares the suite between pytest-xdist workers: whole modules, longest first.

Each module is one unit of work (xdist's ``loadfile``), so a module-scoped
fixture, often a whole demo scenario, is built once. The modules that run the
demo's fleet under load in real time form a single unit, ``END_TO_END``: one
worker runs them one after another while the others work through the rest,
rather than two fleets under load competing for the same two cores and
stretching each other's detection and bake times. The longest units are
handed out first, so that no worker starts one of them near the end.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

END_TO_END = "end-to-end"
END_TO_END_MODULES = frozenset(
    {
        "test_crash_resume.py",
        "test_demo_scenarios.py",
        "test_fault_injection.py",
        "test_pattern_feedback.py",
    }
)
LONGEST_FIRST = (END_TO_END, "tests/test_soak.py")  # ~300 s and ~40-170 s of a ~700 s suite


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, or ``END_TO_END``."""
    module = nodeid.split("::", 1)[0]
    return END_TO_END if PurePosixPath(module).name in END_TO_END_MODULES else module


class ModuleScheduling(LoadFileScheduling):
    """xdist's ``loadfile`` with the end-to-end modules as one unit and the longest units first."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: WorkerController) -> None:
        for unit in reversed(LONGEST_FIRST):
            if unit in self.workqueue:
                self.workqueue.move_to_end(unit, last=False)
        super()._assign_work_unit(node)
