"""Interval verdicts (check.effect, check.equivalent) and the pre-registered verdicts in notebooks/verdicts.toml.

Each registered verdict is simulated at its own number of units with its pilot's spread: with the true effect
exactly at the registered minimum (or the difference exactly at the equivalence bound) it passes at most 5% of
the time (give or take two Monte Carlo standard errors of 1,000 simulations: at the bound a 5% rule passes 5%),
and with the pilot's effect at least 80% of the time.
"""
import subprocess
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import pandas as pd
import pytest

from tutorlib import calibration, check, profile, protocols
from tutorlib.seeds import derive

ROOT = Path(__file__).resolve().parent.parent
SIMULATIONS = 1000
MONTE_CARLO = 2 * (0.05 * 0.95 / SIMULATIONS) ** 0.5  # two standard errors of a simulated 5% rate


def arms(gaps, base=0.6):
    units = pd.MultiIndex.from_tuples([(u // 8, u % 8) for u in range(len(gaps))], names=["seed", "draw"])
    return pd.Series(base + np.asarray(gaps), index=units), pd.Series(base, index=units)


@pytest.fixture
def decided(monkeypatch):
    monkeypatch.setenv("TUTORLIB_PROFILE", "standard")


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setenv("TUTORLIB_PROFILE", "quick")


def test_a_real_effect_passes_with_its_interval_under_the_arms_own_names(decided, capsys):
    gaps = np.random.default_rng(1).normal(0.05, 0.02, 24)
    verdict = check.effect(*arms(gaps), "pretraining helps", min_effect=0.01, names=("pretrained", "random init"))
    out = capsys.readouterr().out
    assert verdict.status == "PASS" and verdict.low > 0.01 and verdict.units == 24
    assert out.startswith("PASS pretraining helps [effect > 0.01, 95% interval over 24 paired units]: pretrained=")
    assert "random init=0.6" in out and f"effect={round(gaps.mean(), 3)}" in out


def test_equal_arms_fail_where_the_profile_decides_and_are_inconclusive_in_quick(decided, monkeypatch):
    gaps = np.random.default_rng(2).normal(0.0, 0.02, 24)
    with pytest.raises(AssertionError, match="^FAIL"):
        check.effect(*arms(gaps), "no effect", min_effect=0.0)
    monkeypatch.setenv("TUTORLIB_PROFILE", "quick")
    assert check.effect(*arms(gaps), "no effect", min_effect=0.0).status == "INCONCLUSIVE"
    with pytest.raises(AssertionError, match="^FAIL"):  # an interval wholly against the claim fails in quick too
        check.effect(*arms(gaps - 0.05), "no effect", min_effect=0.0)


def test_too_few_units_for_an_interval_are_an_error_where_the_profile_decides_and_inconclusive_in_quick(
        decided, monkeypatch, capsys):
    gaps = np.full(3, 0.3)  # a large effect on three units: still no interval at all
    with pytest.raises(ValueError, match="at least 6 paired units"):
        check.effect(*arms(gaps), "x", min_effect=0.0)
    clustered = pd.Series(0.6 + gaps, index=pd.MultiIndex.from_tuples(
        [(p, 0) for p in range(3)], names=[check.CLUSTER_LEVEL, "draw"]))
    with pytest.raises(ValueError, match="from 9 paired units"):
        check.effect(clustered, clustered - 0.3, "x", min_effect=0.0, interval="cluster-t")
    monkeypatch.setenv("TUTORLIB_PROFILE", "quick")
    verdict = check.effect(clustered, clustered - 0.3, "x", min_effect=0.0, interval="cluster-t")
    out = capsys.readouterr().out
    assert verdict.status == "INCONCLUSIVE" and verdict.estimate == pytest.approx(0.3) and np.isnan(verdict.low)
    assert "units=3" in out and "units the interval needs=9" in out
    assert check.effect(*arms(np.full(5, 0.3)), "x", min_effect=0.0).status == "INCONCLUSIVE"
    assert check.effect(*arms(np.full(6, 0.3)), "x", min_effect=0.0).status == "PASS"  # enough units: decided


def test_a_diverged_unit_fails_unless_the_claim_states_its_score(quick):
    better, worse = arms(np.full(12, 0.1) + np.linspace(0, 0.01, 12))
    worse.iloc[3] = float("nan")  # the baseline's run diverged on one draw
    with pytest.raises(AssertionError, match="^FAIL"):
        check.effect(better, worse, "x", min_effect=0.0)
    verdict = check.effect(better, worse, "x", min_effect=0.0, diverged=0.2)  # scored as chance on 5 classes
    assert verdict.status == "PASS" and verdict.estimate == pytest.approx(0.105 + 0.4 / 12)


def test_a_negative_minimum_is_a_labelled_non_inferiority_margin(decided, capsys):
    gaps = np.random.default_rng(3).normal(0.0, 0.005, 24)
    with pytest.raises(ValueError, match="non_inferiority=True"):
        check.effect(*arms(gaps), "pruned is as good", min_effect=-0.02)
    assert check.effect(*arms(gaps), "pruned is as good", min_effect=-0.02, non_inferiority=True).status == "PASS"
    assert "non-inferiority, margin 0.02" in capsys.readouterr().out


def test_equivalence_asserts_that_an_effect_is_absent_and_fails_a_real_one(decided):
    rng = np.random.default_rng(4)
    assert check.equivalent(*arms(rng.normal(0.0, 0.01, 24)), "no gain", bound=0.02).status == "PASS"
    with pytest.raises(AssertionError, match="equivalence within"):
        check.equivalent(*arms(rng.normal(0.04, 0.01, 24)), "no gain", bound=0.02)


@pytest.mark.parametrize("bad, error, words", [
    (lambda: check.effect(*arms(np.ones(3)), "x", min_effect=0.0), ValueError, "at least 6"),
    (lambda: check.effect(*arms(np.ones(12)), "x", min_effect=float("nan")), ValueError, "finite"),
    (lambda: check.equivalent(*arms(np.ones(12)), "x", bound=0), ValueError, "must be a finite number > 0"),
    (lambda: check.effect({0: 1.0, 1: 1.0}, {0: 0.0, 2: 0.0}, "x", min_effect=0.0), ValueError, "same units"),
    (lambda: check.effect([1.0] * 8, [0.0] * 8, "x", min_effect=0.0), TypeError, "one number per unit"),
    (lambda: check.registered("no such verdict", {}, {}), KeyError, "pre-registered"),
])
def test_bad_input_names_the_fix(bad, error, words, decided):  # quick turns too few units into INCONCLUSIVE
    with pytest.raises(error, match=words):
        bad()


def test_the_interval_comes_from_scipy_and_is_the_same_every_time():
    d = np.random.default_rng(5).normal(0.03, 0.02, 24)
    assert check.interval(d) == check.interval(d)
    assert check.interval(np.full(8, 0.25)) == (0.25, 0.25, 0.25)
    low, high = check.interval(d)[1:]
    assert low < d.mean() < high


def test_a_retired_verdict_is_measured_by_its_rule_and_reported_not_asserted(decided, monkeypatch, capsys):
    entry = {"kind": "equivalence", "claim": "no gain", "names": ["new", "old"], "bound": 0.02, "units": 24,
             "paper": "p", "retired": "failed on seeds 0-2"}
    monkeypatch.setattr(check, "preregistration", lambda key=None: entry)
    verdict = check.registered("any", *arms(np.random.default_rng(6).normal(0.05, 0.01, 24)))  # far outside +-0.02
    out = capsys.readouterr().out
    assert verdict.status == "RETIRED" and verdict.estimate > 0.04
    assert out.startswith("NOT ASSERTED no gain [registered: equivalence within +-0.02, 90% interval over 24 units; "
                          "retired: failed on seeds 0-2]")
    assert "registered_rule_holds=False" in out


REGISTERED = check.preregistration()


def test_every_registered_verdict_states_what_the_rules_ask():
    assert REGISTERED, "notebooks/verdicts.toml registers no verdict"
    for key, entry in REGISTERED.items():
        assert entry["kind"] in ("effect", "non-inferiority", "equivalence"), key
        assert {"claim", "names", "units", "set_from", "pilot_effect", "pilot_sd", "paper"} <= set(entry), key
        assert set(entry) <= check.ENTRY_FIELDS, key
        assert entry["units"] >= check.MIN_UNITS, key
        if entry["kind"] == "effect":
            assert entry["min_effect"] >= 0, key
        if entry["kind"] == "non-inferiority":
            assert entry["min_effect"] < 0, key


def _pass_rate(entry: dict, true_effect: float) -> float:
    """How often the registered rule (check.decide, as the chapter calls it) passes on simulated paired units with
    `true_effect` and the pilot's spread."""
    threshold = entry["bound"] if entry["kind"] == "equivalence" else entry["min_effect"]
    return calibration.pass_rate(entry["kind"], threshold, true_effect, entry["pilot_sd"], entry["units"],
                                 entry.get("clusters"), entry.get("pilot_icc", 0.0),
                                 method=entry.get("interval", "registered"), simulations=SIMULATIONS)[0]


@pytest.mark.parametrize("key", sorted(REGISTERED))
def test_a_registered_verdict_passes_at_most_5_percent_of_null_draws(key):
    entry = REGISTERED[key]
    null = entry["bound"] if entry["kind"] == "equivalence" else entry["min_effect"]
    assert _pass_rate(entry, null) <= 0.05 + MONTE_CARLO  # at the bound a 5%-level rule passes 5%, give or take


@pytest.mark.parametrize("key", sorted(REGISTERED))
def test_a_registered_verdict_has_80_percent_power_at_its_pilot_effect(key):
    assert _pass_rate(REGISTERED[key], REGISTERED[key]["pilot_effect"]) >= 0.80


@pytest.mark.parametrize("key", sorted(k for k, e in REGISTERED.items() if "retired" not in e))
def test_a_live_verdict_keeps_80_percent_power_at_one_and_a_half_times_its_pilot_spread(key):
    """Pilots are small: the spread a confirming run sees can be larger (the audit found 2.5x once)."""
    entry = dict(REGISTERED[key], pilot_sd=1.5 * REGISTERED[key]["pilot_sd"])
    assert _pass_rate(entry, entry["pilot_effect"]) >= 0.80


def test_the_registered_thresholds_were_committed_before_the_chapters_that_use_them():
    """Git history shows the order: verdicts.toml's first commit with a key precedes the chapter reading it."""
    log = subprocess.run(["git", "log", "--format=%H", "--reverse", "--", "notebooks/verdicts.toml"], cwd=ROOT,
                         capture_output=True, text=True)
    if log.returncode != 0 or not log.stdout.strip():
        pytest.skip("not a git clone with history (an installed course)")
    for key, entry in REGISTERED.items():
        first_toml = _first_commit_with(key, "notebooks/verdicts.toml")
        first = tomllib.loads(subprocess.run(["git", "show", f"{first_toml}:notebooks/verdicts.toml"], cwd=ROOT,
                                             capture_output=True, text=True, check=True).stdout)[key]
        for field in ("kind", "min_effect", "bound", "units"):  # never re-set after the confirming runs
            assert first.get(field) == entry.get(field), f"{key}: {field} changed since it was registered"
        users = subprocess.run(["git", "grep", "-l", f'"{key}"', "HEAD", "--", "notebooks/*.ipynb"], cwd=ROOT,
                               capture_output=True, text=True).stdout.split()
        for user in users:
            first_use = _first_commit_with(key, user.split(":", 1)[1])
            order = subprocess.run(["git", "merge-base", "--is-ancestor", first_toml, first_use], cwd=ROOT)
            assert first_toml != first_use and order.returncode == 0, f"{key}: registered after {user} used it"


def _first_commit_with(key: str, path: str) -> str:
    commits = subprocess.run(["git", "log", "--format=%H", "--reverse", "-S", key, "--", path], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert commits, f"{key} never appears in {path}"
    return commits[0]


def test_profiles_say_whether_they_decide():
    assert not profile.current("quick").decides and profile.current("standard").decides


GOOD_ENTRY = '[ch0_x]\nkind = "effect"\nclaim = "c"\nnames = ["a", "b"]\nmin_effect = 0.0\nunits = 6\n'


@pytest.mark.parametrize("text, message", [
    (GOOD_ENTRY.replace('names = ["a", "b"]\n', ""), "lacks ['names']"),
    (GOOD_ENTRY + GOOD_ENTRY, "A key defined twice"),
    (GOOD_ENTRY.replace('"effect"', '"non_inferiority"'), "did you mean 'non-inferiority'?"),
    (GOOD_ENTRY.replace('["a", "b"]', '["a"]'), "must name the two arms"),
])
def test_a_damaged_registry_names_the_file_the_entry_and_the_fix(tmp_path, monkeypatch, text, message):
    registry = tmp_path / "verdicts.toml"
    registry.write_text(text)
    monkeypatch.setattr(check, "_verdicts_file", lambda: registry)
    with pytest.raises(ValueError) as info:
        check.preregistration("ch0_x")
    assert message in str(info.value) and str(registry) in str(info.value), str(info.value)


def _markdown_blocks(notebook: Path):
    """A chapter's markdown as paragraphs and list items (a finding is stated in one of them)."""
    import json
    import re

    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            yield from re.split(r"\n(?=\* |\d+\. |\n)", "".join(cell["source"]))


def test_every_finding_stated_as_decided_names_a_live_registry_key():
    """Prose may call a finding decided only beside the verdict that decides it: a registry key in the same
    paragraph or list item, one that exists and is not retired ("not decided" needs none)."""
    import re

    problems = []
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for block in _markdown_blocks(notebook):
            if not re.search(r"(?<!not )\bdecided\b", re.sub(r"\s+", " ", block), re.I):
                continue
            keys = re.findall(r"`(ch\d_\w+)`", block)
            gone = [k for k in keys if k not in REGISTERED or "retired" in REGISTERED[k]]
            if not keys or gone:
                problems.append(f"{notebook.name}: {'retired or unknown ' + str(gone) if gone else 'no key'}: "
                                f"{block.strip()[:90]}...")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- the 2026-12-07 registration pass
LIVE = {key: entry for key, entry in REGISTERED.items() if "retired" not in entry}


def test_every_live_verdict_meets_the_rules_of_the_registration_pass():
    """One smallest effect per unit, a live sensitivity arm beside every 'no effect', a calibrated cluster interval
    over >= 5 pretraining runs (or one published checkpoint), a registered protocol and a fresh confirming set."""
    assert LIVE, "no live verdict: the course asserts nothing"
    assert check.registration_problems(REGISTERED) == []


def _entry(**fields):
    base = {"kind": "non-inferiority", "unit": "accuracy", "min_effect": -0.02, "interval": "cluster-t", "clusters": 5,
            "protocol": {"function": "f", "args": {}}, "pilot_seeds": [500], "sensitivity": "arm",
            "confirm_seeds": [[0, 1, 2], [20, 21, 22], [83, 84, 85]]}
    return base | fields


@pytest.mark.parametrize("fields, problem", [
    ({"min_effect": -0.10, "anchor_effect": 0.10}, "more than half the anchor's effect"),
    ({"min_effect": -0.05, "anchor_effect": 0.10}, "no live sensitivity arm"),  # the arm must see 0.05
    ({"min_effect": -0.05, "anchor_effect": 0.10, "arm_minimum": 0.05}, None),  # at most half the anchor's effect
    ({"min_effect": -0.03}, "smallest effect, 0.02"),
    ({"sensitivity": "nothing"}, "no live sensitivity arm"),
    ({"clusters": 1}, "fewer than 5 pretraining runs"),
    ({"clusters": 1, "published_checkpoint": "Lite0"}, None),
    ({"confirm_seeds": [[0, 1, 2], [20, 21, 22]]}, "a fresh set"),
    ({"interval": "registered"}, "cluster-t"),
    ({"kind": "effect", "min_effect": 0.0}, "an effect's minimum is the unit's smallest effect"),
])
def test_the_rules_refuse_a_margin_above_half_the_anchor_and_every_other_shortcut(fields, problem):
    arm = _entry(kind="effect", min_effect=fields.pop("arm_minimum", 0.02))
    del arm["sensitivity"]
    problems = check.registration_problems({"arm": arm, "x": _entry(**fields)})
    assert (problems == []) if problem is None else any(problem in p and p.startswith("[x]") for p in problems), problems
    assert check.registration_problems({"arm": arm, "x": _entry(**fields) | {"retired": "why"}}) == []


def test_a_protocol_entry_takes_only_the_table_its_protocol_returned(decided):
    key = "ch3_first_step_no_vanishing_cnn"
    entry = REGISTERED[key]
    units = pd.MultiIndex.from_tuples([(p, 0, k) for p in range(5) for k in range(6)], names=protocols.UNIT_INDEX)
    table = pd.DataFrame({entry["names"][0]: 0.0, entry["names"][1]: 0.1}, index=units)
    with pytest.raises(ValueError, match="registered with protocol"):
        check.registered(key, table)  # no protocol recorded: not the registered measurement
    with pytest.raises(ValueError, match="registered with protocol"):
        check.registered(key, table[entry["names"][0]], table[entry["names"][1]])
    table.attrs["protocol"] = dict(entry["protocol"], args={"batch": 64, "labels_per_class": 50})
    with pytest.raises(ValueError, match="new registry key"):
        check.registered(key, table)  # another batch size is another question
    table.attrs["protocol"] = entry["protocol"]
    verdict = check.registered(key, table)
    assert verdict.status == "PASS" and verdict.estimate == pytest.approx(-0.1)


@pytest.mark.parametrize("key", sorted(k for k, e in REGISTERED.items() if "protocol" in e))
def test_a_protocol_entry_carries_its_committed_pilot_output(key):
    entry = REGISTERED[key]
    assert entry["protocol"]["function"] in protocols.PROTOCOLS, key
    text = (ROOT / "notebooks" / "pilots" / f"{key}.txt").read_text()
    assert f"pilot_effect = {entry['pilot_effect']:.4f}" in text and f"pilot_sd = {entry['pilot_sd']:.4f}" in text


@pytest.mark.slow
def test_the_first_step_pilot_reruns_from_the_repository_to_the_recorded_numbers():
    """The pilot re-runs from the repository (python -m tutorlib.tools.pilot KEY) and reproduces its record."""
    from tutorlib.tools import pilot

    key = "ch3_first_step_no_vanishing_cnn"
    found = pilot.run(key)
    assert (round(found["effect"], 4), round(found["sd"], 4)) == (REGISTERED[key]["pilot_effect"],
                                                                    REGISTERED[key]["pilot_sd"])


def test_no_chapter_ran_a_registered_protocol_before_its_question_was_registered():
    """Git history: the first commit whose chapter code calls an entry's protocol comes after the entry's."""
    log = subprocess.run(["git", "log", "--format=%H", "-1"], cwd=ROOT, capture_output=True, text=True)
    if log.returncode != 0 or not log.stdout.strip():
        pytest.skip("not a git clone with history (an installed course)")
    for key, entry in REGISTERED.items():
        if "protocol" not in entry:
            continue
        call = f"protocols.{entry['protocol']['function']}("
        uses = subprocess.run(["git", "log", "--format=%H", "--reverse", "-S", call, "--", "notebooks/*.ipynb"],
                              cwd=ROOT, capture_output=True, text=True).stdout.split()
        if not uses:
            continue  # registered, not run yet
        registered_in = _first_commit_with(key, "notebooks/verdicts.toml")
        order = subprocess.run(["git", "merge-base", "--is-ancestor", registered_in, uses[0]], cwd=ROOT)
        assert registered_in != uses[0] and order.returncode == 0, f"{key}: a chapter ran {call} before it was registered"


CANDIDATES = tomllib.loads((ROOT / "notebooks" / "candidates.toml").read_text())


@pytest.mark.parametrize("key", sorted(CANDIDATES))
def test_a_question_piloted_and_not_registered_says_why_and_reruns(key):
    """notebooks/candidates.toml: questions the pilot showed the course could not decide; never asserted."""
    entry = CANDIDATES[key]
    assert key not in REGISTERED and len(entry["not_registered"]) > 40, key
    assert entry["protocol"]["function"] in protocols.PROTOCOLS, key
    assert (ROOT / "notebooks" / "pilots" / f"{key}.txt").exists(), key
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f'"{key}"' not in notebook.read_text(), f"{notebook.name} runs the unregistered {key}"


def test_a_pilot_at_another_setting_reads_toml_values_and_refuses_what_the_protocol_does_not_take():
    """`pilot KEY --with lr=0.01` explores a setting on the pilot seeds; a typo is named, never silently ignored."""
    from tutorlib.tools import pilot

    assert pilot._changes(["lr=0.01", "widths=[8, 32]"]) == {"lr": 0.01, "widths": [8, 32]}
    for bad in ("lr", "lr=abc", "=3"):
        with pytest.raises(SystemExit, match="NAME=VALUE"):
            pilot._changes([bad])
    with pytest.raises(SystemExit, match=r"--with \['rate'\].*takes \['lr', 'shots', 'steps', 'widths'\]"):
        pilot.run("ch2_small_pretrained_model_costs", {"rate": 0.01})


def test_pilots_of_entries_sharing_a_protocol_share_one_run_of_it(monkeypatch, capsys):
    """`pilot KEY1 KEY2`: chapter 1's positive control and its two candidates read one table, run once."""
    from tutorlib.tools import pilot

    calls = []

    def fake(halves, seeds, runs, draws, **args):
        calls.append(args)
        index = pd.MultiIndex.from_tuples([(derive(s, f"source {k}"), s, k) for s in seeds for k in range(draws)],
                                          names=protocols.UNIT_INDEX)
        rng = np.random.default_rng(0)
        return pd.DataFrame({name: rng.normal(0.7, 0.03, len(index)) for name in
                             ("A 100%", "A 30%", "A imbalance 100", "digits", "random init")}, index=index)

    monkeypatch.setitem(protocols.PROTOCOLS, "source_data", fake)
    monkeypatch.setattr(pilot, "load_halves", lambda prof: None)
    monkeypatch.setattr(pilot, "SIMULATIONS", 20)
    monkeypatch.setattr(pilot, "_TABLES", {})
    assert pilot.main(["ch1_pretraining_helps_early", "ch1_domain_distance_early", "ch1_imbalance_costs_early"]) == 0
    assert len(calls) == 1
    out = capsys.readouterr().out
    assert out.count("pilot of ") == 3 and "difference = A 30% minus A imbalance 100" in out
