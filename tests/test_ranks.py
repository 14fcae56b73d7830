"""tutorlib.ranks: Kendall's tau, its chance rate with families kept, and the rank-agreement verdict that can fail."""
import pytest

from tutorlib import ranks

SCORES = {f"m{i}": float(i) for i in range(7)}


def test_kendall_tau_and_its_chance_rate():
    assert ranks.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert ranks.kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    five = [1, 2, 3, 4, 5]
    assert ranks.chance_of_tau(five, five, 1.0) == pytest.approx(1 / 120)
    assert ranks.chance_of_tau(five, five, 0.8) == pytest.approx(5 / 120)  # at most one swapped pair
    assert ranks.chance_of_tau(list(range(9)), list(range(9)), -1.0) == 1.0
    assert 0.0 < ranks.chance_of_tau(list(range(9)), list(range(9)), 0.5) < 0.05  # Monte Carlo above 8! orders


def test_chance_with_families_kept_counts_what_family_structure_alone_gives():
    """Five small CNNs, three Lites, one ResNet: FLOPs and latency agree between families by construction."""
    flops = [1, 2, 4, 8, 3, 20, 30, 40, 25]
    families = ["CNN"] * 5 + ["Lite"] * 3 + ["ResNet"]
    assert ranks.chance_of_tau(flops, flops, 0.5) < 0.05  # uniform rankings: tau 0.5 looks meaningful
    assert ranks.chance_of_tau(flops, flops, 0.5, families) > 0.7  # but structure alone reaches it
    assert ranks.chance_of_tau(flops, flops, 1.0, families) == pytest.approx(1 / (120 * 6))  # 5! x 3! orders
    items = {f"m{i}": float(v) for i, v in enumerate(flops)}
    with pytest.raises(ValueError, match="with families kept"):
        ranks.rank_agreement(items, items, "latency follows FLOPs", min_tau=0.5, families=families)
    with pytest.raises(ValueError, match="one label per item"):
        ranks.rank_agreement(items, items, "x", min_tau=0.9, families=families[:-1])


def test_rank_agreement_passes_a_matching_ranking():
    truth = {k: 2 * v + 1 for k, v in SCORES.items()}
    assert ranks.rank_agreement(SCORES, truth, "scores rank like truth", min_tau=0.6) == 1.0

@pytest.mark.parametrize("truth, why", [
    ({k: -v for k, v in SCORES.items()}, "reversed ranking"),
    ({k: v for k, v in zip(SCORES, [3.0, 0.0, 6.0, 1.0, 5.0, 2.0, 4.0])}, "unrelated ranking"),
    ({**SCORES, "m3": float("nan")}, "one NaN item"),
])
def test_rank_agreement_fails_on_null_data(truth, why):
    with pytest.raises(AssertionError, match="FAIL"):
        ranks.rank_agreement(SCORES, truth, why, min_tau=0.6)


def test_rank_agreement_refuses_a_threshold_chance_passes_often():
    five = {f"m{i}": float(i) for i in range(5)}
    with pytest.raises(ValueError, match="random ranking reaches"):
        ranks.rank_agreement(five, five, "too few items", min_tau=0.0)


def test_rank_agreement_asks_for_one_number_per_model():
    with pytest.raises(TypeError, match="one number per model"):
        ranks.rank_agreement([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "lists", min_tau=0.5)
