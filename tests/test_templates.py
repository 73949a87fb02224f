"""Template mining: masked messages group into templates that survive a restart."""

from __future__ import annotations

import json

import pytest

from benchmarks.loghub import grouping_accuracy
from states.telemetry.masks import DEFAULT_MASKS, MaskRule, compile_masks, mask_message
from states.telemetry.templates import MiningSettings, TemplateMiner

MASKS = compile_masks(DEFAULT_MASKS)


class TestMasking:
    @pytest.mark.parametrize(
        ("message", "masked"),
        [
            ("connect to 10.0.0.7:5432 failed", "connect to <ADDR> failed"),
            ("peers 10.0.0.1,10.0.0.2 up", "peers <ADDR> up"),
            ("dial db.internal.example:5432 refused", "dial <ADDR> refused"),
            ("order 3f2b8c1e-9d4a-4e2b-8f1a-0c6d2e9b7a55 paid", "order <UUID> paid"),
            ("read /var/lib/app/data.db ok", "read <PATH> ok"),
            ("open C:\\Windows\\system32\\x.dll", "open <PATH>"),
            ("fetch https://api.example.com/v1/items?id=3 done", "fetch <URL> done"),
            ("at 2025-11-09T14:30:45.123Z started", "at <TS> started"),
            ("took 14:30:45 total", "took <TIME> total"),
            ("retry 3 of 5", "retry <NUM> of <NUM>"),
            ("ratio -0.25 now", "ratio <NUM> now"),
            ("addr 0x7ffee4b0 bad", "addr <NUM> bad"),
            ("commit 9f3a2b1c4d5e merged", "commit <NUM> merged"),
            ("generating core.2275", "generating core.<NUM>"),
            ("user uid=1000 blk_-1608999687919862906", "user uid=<NUM> blk_-<NUM>"),
            ("waited 250 ms then 3 sec", "waited <DUR> then <DUR>"),
            ("sent 18846 bytes (18.4 KB) total", "sent <NUM> bytes total"),
        ],
    )
    def test_variable_parts_are_replaced_by_their_kind(self, message: str, masked: str) -> None:
        assert mask_message(message, MASKS) == masked

    def test_words_that_merely_look_like_hex_are_kept(self) -> None:
        assert mask_message("cafe added a decade", MASKS) == "cafe added a decade"

    def test_a_broken_custom_rule_is_reported_by_name(self) -> None:
        with pytest.raises(ValueError, match="'ticket'"):
            compile_masks([MaskRule("ticket", "JIRA-(")])

    def test_custom_rules_apply_in_order(self) -> None:
        masks = compile_masks([MaskRule("TICKET", r"\bJIRA-\d+\b"), *DEFAULT_MASKS])
        assert mask_message("fixes JIRA-123 and 7", masks) == "fixes <TICKET> and <NUM>"


class TestMining:
    def test_messages_differing_only_in_variables_share_a_template(self) -> None:
        miner = TemplateMiner()
        first = miner.add("Connection to 10.0.0.7:5432 timed out after 3000 ms")
        second = miner.add("Connection to 10.0.0.9:5432 timed out after 1200 ms")
        assert first.template_id == second.template_id
        assert second.template == "Connection to <ADDR> timed out after <DUR>"

    def test_the_first_message_of_a_template_is_flagged_new(self) -> None:
        miner = TemplateMiner()
        flags = [
            miner.add(message).is_new
            for message in (
                "cache miss for key 1",
                "cache miss for key 2",
                "disk full on /dev/sda1",
            )
        ]
        assert flags == [True, False, True]

    def test_different_events_get_different_templates(self) -> None:
        miner = TemplateMiner()
        a = miner.add("user 17 logged in from 10.0.0.1")
        b = miner.add("payment 17 declined by issuer")
        assert a.template_id != b.template_id
        assert len(miner.templates()) == 2

    def test_a_template_generalizes_when_a_constant_turns_out_to_vary(self) -> None:
        miner = TemplateMiner(MiningSettings(similarity=0.5))
        miner.add("nightly job started on worker alpha")
        changed = miner.add("nightly job started on worker beta")
        assert changed.changed and not changed.is_new
        assert changed.template == "nightly job started on worker <*>"

    def test_counts_are_kept_per_window(self) -> None:
        miner = TemplateMiner()
        ids = [miner.add(f"request {n} served").template_id for n in range(3)]
        other = miner.add("shutting down").template_id
        assert miner.close_window() == {ids[0]: 3, other: 1}
        miner.add("request 9 served")
        assert miner.window_counts() == {ids[0]: 1}

    def test_match_finds_a_known_template_without_learning(self) -> None:
        miner = TemplateMiner()
        known = miner.add("queue depth 10 exceeded").template_id
        assert miner.match("queue depth 99 exceeded") == known
        assert miner.match("something never seen before") is None
        assert miner.window_counts() == {known: 1}


class TestPersistence:
    def test_state_round_trips_through_json_across_a_restart(self) -> None:
        before = TemplateMiner()
        ids = {
            message: before.add(message).template_id
            for message in (
                "request 1 served in 12 ms",
                "cache miss for key user:42",
                "disk /dev/sda1 at 91% capacity",
            )
        }
        stored = json.dumps(before.to_state())

        after = TemplateMiner.from_state(json.loads(stored))
        assert after.templates() == before.templates()
        assert after.window_counts() == before.window_counts()
        again = after.add("request 7 served in 3 ms")
        assert (again.template_id, again.is_new) == (ids["request 1 served in 12 ms"], False)
        assert again.size == 2
        assert after.add("brand new event kind").template_id == max(ids.values()) + 1

    def test_state_holds_only_plain_data(self) -> None:
        miner = TemplateMiner()
        miner.add("hello 1")
        state = miner.to_state()
        assert json.loads(json.dumps(state)) == state

    def test_an_unknown_state_version_is_refused(self) -> None:
        with pytest.raises(ValueError, match="version"):
            TemplateMiner.from_state({"version": 99, "templates": [], "next_id": 0})


class TestGroupingAccuracy:
    def test_identical_groupings_score_one_whatever_the_labels(self) -> None:
        assert grouping_accuracy(["a", "a", "b"], [7, 7, 9]) == 1.0

    def test_a_split_group_makes_all_its_messages_wrong(self) -> None:
        assert grouping_accuracy(["a", "a", "b"], [1, 2, 3]) == pytest.approx(1 / 3)

    def test_a_merged_group_makes_all_its_messages_wrong(self) -> None:
        assert grouping_accuracy(["a", "a", "b", "c"], [1, 1, 1, 2]) == pytest.approx(1 / 4)

    def test_mismatched_lengths_are_refused(self) -> None:
        with pytest.raises(ValueError, match="same messages"):
            grouping_accuracy(["a"], [1, 2])
