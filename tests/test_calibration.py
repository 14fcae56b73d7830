"""The cluster-aware interval keeps its level at the course's N: simulated with the true effect at the threshold.

Every simulated verdict calls `check.decide`, the function the chapters' verdicts call, 4,000 times per case
(Monte Carlo standard error about 0.25 points at 2.5%). Limits (docs/design.md, section 5a): an effect's
one-sided false pass <= 2.5% + 2 MC errors for normal and for clustered units (intraclass correlation 0.3
within a pretraining run), <= 5% for skewed units (gamma, skewness -1) and for 10% of draws collapsed 3 sd
below the rest; an equivalence (two one-sided tests at 5% each) <= 5% + 2 MC errors and <= 10% likewise.
A collapse deeper than that, in a sample too small to contain one, no interval can see: the diverged-score
rule of the claim and the number of units are what protect against it (simulated and printed, not asserted).
"""
from __future__ import annotations

import pytest

from tutorlib import calibration, check

SIMULATIONS = 4000
pytestmark = pytest.mark.slow  # about 20 s: in make test, not in make unit

DESIGNS = [(9, None), (12, None), (24, None), (48, None), (10, 5), (15, 5), (24, 6), (24, 8)]  # (units, clusters)


def _limit(nominal: float, shape: str, mc_error: float) -> float:
    return nominal + 2 * mc_error if shape == "normal" else 2 * nominal


@pytest.mark.parametrize("units, clusters", DESIGNS)
@pytest.mark.parametrize("shape", ["normal", "skew-", "collapse"])
def test_an_effect_at_its_threshold_passes_at_most_its_level(units, clusters, shape):
    icc = 0.3 if clusters else 0.0
    rate, mc = calibration.pass_rate("effect", 0.02, 0.02, 0.03, units, clusters, icc, shape, simulations=SIMULATIONS)
    print(f"effect, {units} units in {clusters or units} clusters, {shape}: false pass {rate:.4f} (MC se {mc:.4f})")
    assert rate <= _limit(0.025, shape, mc), (units, clusters, shape, rate)


@pytest.mark.parametrize("units, clusters", [(24, None), (48, None), (24, 6), (48, 8)])
@pytest.mark.parametrize("shape", ["normal", "skew-", "skew+", "collapse"])
@pytest.mark.parametrize("side", [1, -1])
def test_an_equivalence_at_its_bound_passes_at_most_its_level(units, clusters, shape, side):
    icc = 0.3 if clusters else 0.0
    rate, mc = calibration.pass_rate("equivalence", 0.02, side * 0.02, 0.02, units, clusters, icc, shape,
                                     simulations=SIMULATIONS)
    print(f"equivalence at {side * 0.02:+}, {units} units in {clusters or units} clusters, {shape}: {rate:.4f}")
    assert rate <= _limit(0.05, shape, mc), (units, clusters, shape, side, rate)


def test_a_real_effect_is_found_and_clusters_cost_power_honestly():
    """At 24 units, an effect of 2 sd / sqrt(24) above the threshold: found far more often than not; clustered
    into 6 runs with ICC 0.3 the same units carry less information, and the rate says so."""
    alone, _ = calibration.pass_rate("effect", 0.0, 0.012, 0.03, 24, simulations=2000)
    clustered, _ = calibration.pass_rate("effect", 0.0, 0.012, 0.03, 24, 6, 0.3, simulations=2000)
    print(f"power: independent {alone:.3f}, clustered {clustered:.3f}")
    assert alone > 0.4 and clustered < alone


def test_a_deep_collapse_is_printed_not_hidden():
    """10% of draws 3 sd below the rest is the calibrated case; the same share much deeper is a known limit."""
    for depth in (3.0, 6.0):
        old = calibration.COLLAPSE_DEPTH
        calibration.COLLAPSE_DEPTH = depth
        try:
            rate, _ = calibration.pass_rate("effect", 0.0, 0.0, 1.0, 12, shape="collapse", simulations=2000)
        finally:
            calibration.COLLAPSE_DEPTH = old
        print(f"collapse {depth} sd deep, 12 units: false pass {rate:.3f}")
        assert 0 < rate < 0.25


def test_clustered_units_need_a_cluster_aware_rule_and_enough_clusters():
    import numpy as np

    d, labels = calibration.simulated_units(np.random.default_rng(0), 0.0, 1.0, 12, 4, 0.3)
    with pytest.raises(ValueError, match="at least 5 clusters"):
        check.decide("effect", 0.0, d, labels, "cluster-t")
    with pytest.raises(ValueError, match='interval = "cluster-t"'):
        check.decide("effect", 0.0, d, labels)
    with pytest.raises(ValueError, match="from 9 paired units up"):
        check.cluster_interval(d[:8])
    d, labels = calibration.simulated_units(np.random.default_rng(0), 0.0, 1.0, 12, 6, 0.3)
    estimate, low, high = check.cluster_interval(d, labels.astype(str))  # labels of any kind
    means = [d[labels == k].mean() for k in range(6)]  # the estimate weighs every pretraining run equally
    assert estimate == pytest.approx(np.mean(means)) and low < estimate < high
