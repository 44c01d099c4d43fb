"""The benchmark table renders ratios against same-run baselines (timings themselves are not asserted)."""

from bench.common import Row, median_time, render


def test_rows_render_with_ratios_and_without_a_baseline():
    rows = [
        Row("a1", "fast thing", 0.002, "slow thing", 0.010, "s"),
        Row("a1", "grading (wall)", 3.5, "", None, "s", note="12 checks"),
    ]
    text = render(rows)
    assert "0.20" in text and "2.00 ms" in text and "10.00 ms" in text
    assert "3.50 s" in text and "12 checks" in text
    assert rows[1].ratio is None


def test_median_time_calls_the_function_warmup_plus_repeat_times():
    calls = []
    t = median_time(lambda: calls.append(1), repeat=4, warmup=2)
    assert len(calls) == 6 and t >= 0
