"""Counter increments across wraps and restarts, and the OEE definition's invariants (property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_pipeline.lib.transforms.counters import UINT32, increments
from twin_pipeline.lib.transforms.oee import OeeInputs, oee


def test_plain_increments_with_a_baseline() -> None:
    r = increments([12, 15, 20], [10.0, 20.0, 30.0], max_rate_per_s=2.0, baseline=10, baseline_s=0.0)
    assert (r.total, r.wraps, r.resets) == (10, 0, 0)


def test_a_wrap_counts_across_2_pow_32() -> None:
    """Q2 (RELIABILITY.md): A wrap counts across 2**32."""
    r = increments([UINT32 - 3, UINT32 - 1, 2, 5], [0.0, 1.0, 2.0, 3.0], max_rate_per_s=5.0)
    assert (r.total, r.wraps, r.resets) == (2 + 3 + 3, 1, 0)


def test_a_plc_restart_counts_from_zero_again() -> None:
    """Q2 (RELIABILITY.md): A PLC restart counts from zero again."""
    r = increments([500, 510, 3, 8], [0.0, 5.0, 600.0, 605.0], max_rate_per_s=2.0)
    assert (r.total, r.wraps, r.resets) == (10 + 3 + 5, 0, 1)


def test_an_implausible_jump_is_a_glitch_not_parts() -> None:
    r = increments([10, 11, 900_000, 900_001], [0.0, 1.0, 2.0, 3.0], max_rate_per_s=2.0)
    assert r.glitches == 1 and r.total == 2


@settings(max_examples=300)
@given(
    pbt=st.floats(1.0, 12 * 3600.0),
    apt_share=st.floats(0.0, 1.0),
    cycle=st.floats(0.1, 60.0),
    rate_share=st.floats(0.0, 1.0),
    good_share=st.floats(0.0, 1.0),
)
def test_oee_invariants_on_valid_shifts(
    pbt: float, apt_share: float, cycle: float, rate_share: float, good_share: float
) -> None:
    """Q2 (RELIABILITY.md): OEE invariants on valid shifts."""
    apt = pbt * apt_share
    produced = int(apt / cycle * rate_share)
    good = int(produced * good_share)
    f = oee(OeeInputs(pbt, apt, cycle, produced, good))
    if apt == 0:
        assert f.performance is None and f.oee is None
        return
    for ratio in (f.availability, f.performance):
        assert ratio is not None and 0.0 <= ratio <= 1.0 + 1e-12
    if produced == 0:
        assert f.quality is None and f.oee is None  # no parts: quality undefined, not NaN
        return
    assert f.oee is not None and 0.0 <= f.oee <= 1.0 + 1e-12
    assert abs(f.oee - f.availability * f.performance * f.quality) <= 1e-9
    assert abs(f.oee - good * cycle / pbt) <= 1e-9  # OEE = fully productive time / planned busy time


def test_zero_planned_time_gives_none_and_performance_above_1_is_flagged_not_capped() -> None:
    """Q2 (RELIABILITY.md): Zero planned time gives none and performance above 1 is flagged not capped."""
    f = oee(OeeInputs(0.0, 0.0, 1.0, 0, 0))
    assert (f.availability, f.performance, f.quality, f.oee) == (None, None, None, None)
    fast = oee(OeeInputs(3600.0, 3600.0, 1.0, 4000, 4000))
    assert fast.performance == pytest.approx(4000 / 3600) and fast.performance_above_1
