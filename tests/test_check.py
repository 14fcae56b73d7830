"""Verdict cells (`check.expect` / `check.report`) and exercise self-checks."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tutorlib import check, profile

ROOT = Path(__file__).resolve().parent.parent


def test_expect_passes_prints_and_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "r.jsonl"))
    check.expect(0.9 > 0.8, "pretrained beats scratch", pretrained=0.9, scratch=torch.tensor(0.8))
    assert "PASS pretrained beats scratch: pretrained=0.9, scratch=0.8" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="FAIL gap is positive: gap=-0.0123"):
        check.expect(False, "gap is positive", gap=-0.01234)
    check.report("OOD gain", lp_ft=0.33, ft=0.36)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["PASS", "FAIL", "REPORTED"]


def test_mean_sd():
    assert check.mean_sd([0.8, 0.9, 1.0]) == "0.900 ± 0.100 (n=3)"


def test_verdict_records_carry_paper_profile_and_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "r.jsonl"))
    check.expect(True, "x beats y", paper="Someone et al. 2020: +2 points", gap=0.01)
    record = json.loads((tmp_path / "r.jsonl").read_text())
    assert record["paper"] == "Someone et al. 2020: +2 points"
    assert record["profile"] == "quick" and record["seeds"] == list(profile.current().seeds)


# ----------------------------------------------------------------------------- the verdict helpers can fail
ARM = {0: 0.80, 1: 0.75, 2: 0.78}
BETTER = {seed: value + 0.05 for seed, value in ARM.items()}


def test_compare_shows_both_arms_and_the_differences_and_never_asserts(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "r.jsonl"))
    gaps = check.compare(ARM, BETTER, "lower is better", names=("xavier_loss", "he_loss"))
    assert gaps.round(6).tolist() == [-0.05, -0.05, -0.05]  # against the arm named first: shown, not a failure
    out = capsys.readouterr().out
    assert out.startswith("NOT ASSERTED lower is better: xavier_loss=[0.8, 0.75, 0.78], he_loss=[0.85, 0.8, 0.83]")
    assert "interval" not in out  # three seeds: no interval worth the name
    assert json.loads((tmp_path / "r.jsonl").read_text())["status"] == "REPORTED"


def test_compare_gives_an_interval_from_six_units_and_keeps_a_nan_visible(capsys):
    a = {u: 0.8 + 0.01 * u for u in range(8)}
    check.compare(a, {u: 0.7 for u in range(8)}, "many draws")
    assert "mean_difference=0.135, interval=[" in capsys.readouterr().out
    gaps = check.compare({**BETTER, 1: float("nan")}, ARM, "one diverged seed")
    assert gaps.isna().sum() == 1 and "mean_difference=nan" in capsys.readouterr().out


def test_compare_refuses_arms_on_different_seeds_or_not_one_number_per_seed():
    with pytest.raises(ValueError, match="same units"):
        check.compare({0: 1.0, 1: 1.0}, {0: 0.0, 2: 0.0}, "x")
    with pytest.raises(TypeError, match="one number per unit"):
        check.compare([0.9, 0.8], [0.1, 0.2], "x")


def test_no_chapter_asserts_a_bar_on_every_seed():
    """The per-seed rule is gone from the library and the chapters: findings are registered or compared."""
    assert not hasattr(check, "paired")
    for path in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        assert "check.paired(" not in path.read_text(), path.name


# ----------------------------------------------------------------------------- bad input and faults
def test_verdict_numbers_accept_pandas_and_numpy(capsys):
    import pandas as pd

    check.expect(True, "tables print as values", s=pd.Series([1.0, 2.0]), a=np.array([1, 2]), x=np.float32(0.5))
    assert "s={0: 1.0, 1: 2.0}, a=[1, 2], x=0.5" in capsys.readouterr().out


def test_a_verdict_on_nan_fails():
    with pytest.raises(AssertionError, match="FAIL"):
        check.expect(torch.tensor(float("nan")), "a NaN is not a pass")


def test_results_file_in_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_RESULTS", str(tmp_path / "no" / "such" / "results.jsonl"))
    with pytest.raises(FileNotFoundError, match="mkdir -p"):
        check.report("anything", x=1)


def test_per_seed_turns_a_long_table_into_one_column_per_arm():
    table = pd.DataFrame({"seed": [0, 0, 1, 1], "method": ["FT", "LP", "FT", "LP"], "accuracy": [0.9, 0.8, 0.7, 0.75]})
    wide = check.per_seed(table, by="method", value="accuracy")
    assert wide.index.tolist() == [0, 1] and wide["FT"].tolist() == [0.9, 0.7] and wide["LP"].tolist() == [0.8, 0.75]
    with pytest.raises(ValueError, match="no column"):
        check.per_seed(table, by="recipe", value="accuracy")
    with pytest.raises(ValueError, match="two rows"):
        check.per_seed(pd.concat([table, table]), by="method", value="accuracy")
    with pytest.raises(TypeError, match="DataFrame"):
        check.per_seed(table.to_dict(), by="method", value="accuracy")


def test_verdicts_round_their_numbers_to_three_decimals(capsys):
    check.report("rounded", gaps=pd.Series({0: 0.123456, 1: -0.98765}), one=torch.tensor(0.55555), lr=3.04e-4,
                 norm=1.23456e-7, ms=123.4567, nan=float("nan"))
    assert capsys.readouterr().out.strip() == ("NOT ASSERTED rounded: gaps={0: 0.123, 1: -0.988}, one=0.556, "
                                               "lr=0.000304, norm=1.23e-07, ms=123.457, nan=nan")


def test_a_reported_estimate_over_pretraining_runs_is_clustered_by_run():
    """Draws that share a pretraining run are not independent: estimate() widens to the runs' spread."""
    index = pd.MultiIndex.from_product([range(5), [0, 1, 2], [0]], names=["pretrain_seed", "seed", "draw"])
    run_effect = np.repeat([0.0, 0.1, -0.1, 0.05, -0.05], 3)  # the spread is between runs, none within
    clustered = check.estimate(pd.Series(run_effect + np.tile([0.0, 0.001, -0.001], 5), index=index))
    naive = check.estimate(pd.Series(run_effect + np.tile([0.0, 0.001, -0.001], 5)))
    assert clustered["clusters"] == 5 and clustered["units"] == 15 and "clusters" not in naive
    assert np.ptp(clustered["interval"]) > 1.2 * np.ptp(naive["interval"])
    assert clustered["interval"] == pytest.approx(list(check.cluster_interval(run_effect, np.repeat(range(5), 3))[1:]),
                                                  abs=1e-3)


def test_a_retired_question_no_longer_run_is_printed_with_why_and_a_live_one_is_refused(capsys):
    check.report_retired("ch4_freeze_too_deep")
    printed = capsys.readouterr().out
    assert "[retired, not re-run]" in printed and "withdrawn by the registration pass" in printed
    with pytest.raises(ValueError, match="is live: run it with check.registered"):
        check.report_retired("ch4_head_only_costs")
