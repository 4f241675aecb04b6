"""bench soak's recovery figure: the lag must be back under 1,000 and stay there, not dip for one sample."""

from __future__ import annotations

from extractor.tools.bench.soak import recovery_s


def test_a_single_low_sample_after_a_restart_is_not_a_recovery() -> None:
    # a broker restart at t=330: one spurious low reading at 337, the real backlog drains until 374
    samples = [(325.0, 133), (329.0, 165), (337.0, 244), (339.0, 14945), (345.0, 22503), (360.0, 11290),
               (373.0, 1194), (374.0, 208), (376.0, 138), (377.0, 99), (378.0, 193)]
    assert recovery_s(samples, 330.0) == 44.0


def test_a_quick_recovery_and_none_without_one() -> None:
    assert recovery_s([(10.0, 5000), (12.0, 400), (13.0, 300), (14.0, 200), (15.0, 100)], 9.0) == 3.0
    assert recovery_s([(10.0, 5000), (12.0, 4000)], 9.0) is None
