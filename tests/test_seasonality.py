"""Season slots on their boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from states.detect.baselines import season_slot

DAY, WEEK = 86_400.0, 604_800.0
THURSDAY = 0.0  # epoch 0, where a weekly season starts


def test_monday_one_oclock_lands_in_its_own_hourly_slot_of_the_week() -> None:
    monday_one_am = datetime(2024, 1, 1, 1, 0, tzinfo=UTC).timestamp()
    assert season_slot(monday_one_am, WEEK, 168) == 4 * 24 + 1  # four days after Thursday
    assert season_slot(monday_one_am - 0.001, WEEK, 168) == 4 * 24


@pytest.mark.parametrize(
    ("period", "slots"), [(DAY, 24), (DAY, 48), (DAY, 1440), (WEEK, 168), (WEEK, 336)]
)
def test_every_slot_boundary_lands_in_the_slot_it_starts(period: float, slots: int) -> None:
    width = period / slots
    for start in (THURSDAY, THURSDAY + 2_800 * WEEK):
        assert [season_slot(start + k * width, period, slots) for k in range(slots)] == list(
            range(slots)
        )
        assert [season_slot(start + k * width - 0.001, period, slots) for k in range(slots)] == [
            (k - 1) % slots for k in range(slots)
        ]
