"""Stack traces: continuation lines join the record they follow and become frames."""

from __future__ import annotations

from states.telemetry.records import StackFrame
from states.telemetry.stacktraces import JoinedLines, StackTraceJoiner, parse_frame, parse_frames


def join(lines: list[bytes], max_lines: int = 1000) -> list[JoinedLines]:
    joiner = StackTraceJoiner(max_lines=max_lines)
    joined = [group for line in lines for group in joiner.feed(line)]
    return joined + joiner.flush()


PYTHON_TRACE = [
    b"2025-11-09T14:30:45Z ERROR catalog request failed",
    b"Traceback (most recent call last):",
    b'  File "/app/catalog/views.py", line 41, in list_items',
    b"    rows = repository.fetch(page)",
    b'  File "/app/catalog/repository.py", line 88, in fetch',
    b"    return cursor.execute(sql)",
    b"TimeoutError: query took 31s",
    b"2025-11-09T14:30:46Z INFO catalog next request",
]

JAVA_TRACE = [
    b"2025-11-09 14:30:45,120 ERROR [main] c.s.Orders - order failed",
    b"java.lang.IllegalStateException: no stock for sku 42",
    b"\tat com.shop.orders.Orders.place(Orders.java:88)",
    b"\tat java.base/java.lang.Thread.run(Thread.java:833)",
    b"\tat jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
    b"Caused by: java.sql.SQLTimeoutException: timeout",
    b"\tat com.shop.db.Pool.acquire(Pool.java:17)",
    b"\t... 12 more",
    b"2025-11-09 14:30:46,000 INFO [main] c.s.Orders - recovered",
]

JS_TRACE = [
    b'{"level":"error","msg":"unhandled"}',
    b"TypeError: Cannot read properties of undefined (reading 'id')",
    b"    at priceOf (/app/src/cart.js:10:5)",
    b"    at async Promise.all (index 0)",
    b"    at /app/src/server.js:77:12",
    b"    at Object.<anonymous> (file:///app/src/main.mjs:3:9)",
]


class TestJoining:
    def test_a_python_traceback_joins_the_line_before_it(self) -> None:
        joined = join(PYTHON_TRACE)
        assert [group.head for group in joined] == [PYTHON_TRACE[0], PYTHON_TRACE[-1]]
        assert joined[0].continuation == tuple(PYTHON_TRACE[1:-1])
        assert joined[1].continuation == ()

    def test_a_java_trace_with_its_cause_joins_the_line_before_it(self) -> None:
        joined = join(JAVA_TRACE)
        assert [group.head for group in joined] == [JAVA_TRACE[0], JAVA_TRACE[-1]]
        assert joined[0].continuation == tuple(JAVA_TRACE[1:-1])

    def test_a_javascript_trace_joins_the_line_before_it(self) -> None:
        joined = join(JS_TRACE)
        assert len(joined) == 1
        assert joined[0].continuation == tuple(JS_TRACE[1:])

    def test_ordinary_lines_stay_separate_records(self) -> None:
        lines = [b"a started", b"b finished", b"c at noon"]
        assert [group.head for group in join(lines)] == lines

    def test_a_record_completes_only_when_the_next_one_starts_or_on_flush(self) -> None:
        joiner = StackTraceJoiner()
        assert joiner.feed(PYTHON_TRACE[0]) == []
        assert joiner.feed(PYTHON_TRACE[1]) == []
        assert [group.head for group in joiner.flush()] == [PYTHON_TRACE[0]]
        assert joiner.flush() == []

    def test_continuation_without_a_head_starts_a_record(self) -> None:
        joined = join([b"\tat com.x.Y.m(Y.java:1)", b"\tat com.x.Z.n(Z.java:2)"])
        assert joined[0].head == b"\tat com.x.Y.m(Y.java:1)"
        assert joined[0].continuation == (b"\tat com.x.Z.n(Z.java:2)",)

    def test_blank_lines_are_skipped(self) -> None:
        joined = join([PYTHON_TRACE[0], b"", b"\n", *PYTHON_TRACE[1:3]])
        assert len(joined) == 1
        assert joined[0].continuation == tuple(PYTHON_TRACE[1:3])

    def test_very_long_traces_are_bounded_and_the_rest_counted(self) -> None:
        frames = [f"\tat com.x.Y.m{i}(Y.java:{i})".encode() for i in range(50)]
        joined = join([b"head", *frames], max_lines=10)
        assert len(joined[0].continuation) == 10
        assert joined[0].dropped == 40


class TestFrames:
    def test_python_frames_keep_file_line_and_function_in_written_order(self) -> None:
        assert join(PYTHON_TRACE)[0].frames() == (
            StackFrame("/app/catalog/views.py", 41, "list_items"),
            StackFrame("/app/catalog/repository.py", 88, "fetch"),
        )

    def test_java_frames_drop_module_prefixes_and_skip_native_methods(self) -> None:
        assert join(JAVA_TRACE)[0].frames() == (
            StackFrame("Orders.java", 88, "com.shop.orders.Orders.place"),
            StackFrame("Thread.java", 833, "java.lang.Thread.run"),
            StackFrame("Pool.java", 17, "com.shop.db.Pool.acquire"),
        )

    def test_javascript_frames_name_anonymous_functions(self) -> None:
        assert join(JS_TRACE)[0].frames() == (
            StackFrame("/app/src/cart.js", 10, "priceOf"),
            StackFrame("/app/src/server.js", 77, "<anonymous>"),
            StackFrame("/app/src/main.mjs", 3, "Object.<anonymous>"),
        )

    def test_lines_that_name_no_location_yield_no_frame(self) -> None:
        assert parse_frame("    rows = repository.fetch(page)") is None
        assert parse_frame("\t... 12 more") is None
        assert parse_frames(["Traceback (most recent call last):", "ValueError: x"]) == ()

    def test_invalid_utf8_in_a_trace_does_not_stop_frame_parsing(self) -> None:
        joined = join([b"head", b'  File "/app/\xff.py", line 3, in f'])
        assert joined[0].frames() == (StackFrame("/app/\ufffd.py", 3, "f"),)
