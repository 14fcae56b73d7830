"""Re-run a registered verdict's pilot on its exploration seeds: the numbers notebooks/verdicts.toml records.

    python -m tutorlib.tools.pilot KEY            # print the pilot's effect, spread, ICC, size and power
    python -m tutorlib.tools.pilot KEY --write    # and save them as notebooks/pilots/<key>.txt
    python -m tutorlib.tools.pilot KEY --with lr=0.01 --write   # the same pilot at another setting
    python -m tutorlib.tools.pilot KEY1 KEY2      # entries sharing a protocol and seeds: one run of it

KEY is a registry entry, or a question piloted and not registered (notebooks/candidates.toml, which says why).

Why: a power calculation is only as good as the pilot behind it, and a pilot nobody can re-run is a number to
take on trust. The pilot runs the entry's registered protocol (`tutorlib.protocols`) in the standard profile
on the entry's `pilot_seeds` (exploration seeds no chapter and no confirming set uses), on the zoo's pretraining
runs, and simulates the registered rule at the entry's units with the spread it found (`tutorlib.calibration`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import pandas as pd

from .. import calibration, check, profile, protocols
from ..transfer import load_halves

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PILOTS, CANDIDATES = NOTEBOOKS / "pilots", NOTEBOOKS / "candidates.toml"
SIMULATIONS = 2000
_TABLES: dict[str, pd.DataFrame] = {}  # the protocol runs of this process, by call


def icc(differences: pd.Series) -> float:
    """One-way ANOVA intraclass correlation of the differences within a pretraining run (0 if none shows)."""
    groups = [g.to_numpy() for _, g in differences.groupby(level=check.CLUSTER_LEVEL)]
    m, k = len(groups[0]), len(groups)
    if k < 2 or m < 2:
        return 0.0
    between = m * np.var([g.mean() for g in groups], ddof=1)
    within = np.mean([np.var(g, ddof=1) for g in groups])
    return float(max(0.0, (between - within) / (between + (m - 1) * within)))


def entry_of(key: str) -> dict:
    """The registry's entry `key`, or the piloted question of that name in notebooks/candidates.toml."""
    registry = check.preregistration()
    if key in registry:
        return registry[key]
    candidates = tomllib.loads(CANDIDATES.read_text(encoding="utf-8")) if CANDIDATES.exists() else {}
    if key not in candidates:
        raise SystemExit(f"No {key!r} in notebooks/verdicts.toml or notebooks/candidates.toml; registered: "
                         f"{sorted(registry)}, candidates: {sorted(candidates)}.")
    return candidates[key]


def run(key: str, changes: dict | None = None) -> dict:
    """The pilot of `key`: its table of units, the effect, sd and ICC of the paired difference, size and power.

    changes: protocol arguments to run at other values, to see whether a setting favours one arm (say, a rate);
    what it prints is exploration on the pilot seeds, and the registered protocol is unchanged.
    """
    entry = entry_of(key)
    if "protocol" not in entry or "pilot_seeds" not in entry:
        raise SystemExit(f"{key} registers no protocol and pilot seeds: its pilot ran on code that is gone, and its "
                         f"set_from says what it found.")
    prof = profile.current("standard")
    function = protocols.PROTOCOLS[entry["protocol"]["function"]]
    unknown = sorted(set(changes or {}) - set(entry["protocol"]["args"]))
    if unknown:
        raise SystemExit(f"--with {unknown}: {key}'s protocol takes {sorted(entry['protocol']['args'])}.")
    runs = prof.pretrain_runs(entry["pretrain_runs"]) if "pretrain_runs" in entry else prof.pretrain_seeds
    args = entry["protocol"]["args"] | (changes or {})
    call = repr((entry["protocol"]["function"], sorted(args.items()), entry["pilot_seeds"], list(runs),
                 entry.get("pilot_draws", 1)))
    if call not in _TABLES:  # entries that share a protocol, its arguments and seeds share one run of it
        _TABLES[call] = function(load_halves(prof), entry["pilot_seeds"], runs, entry.get("pilot_draws", 1), **args)
    table = _TABLES[call]
    d = table[entry["names"][0]] - table[entry["names"][1]]
    found = {"effect": float(d.mean()), "sd": float(d.std(ddof=1)), "icc": icc(d), "units": len(d),
             "clusters": d.index.get_level_values(check.CLUSTER_LEVEL).nunique()}
    threshold = entry["bound"] if entry["kind"] == "equivalence" else entry["min_effect"]
    null = threshold if entry["kind"] != "equivalence" else threshold * np.sign(found["effect"] or 1)
    design = (entry["units"], entry.get("clusters"), round(found["icc"], 2))
    found["null_pass"] = calibration.pass_rate(entry["kind"], threshold, null, found["sd"], *design,
                                               simulations=SIMULATIONS)[0]
    found["power"] = [calibration.pass_rate(entry["kind"], threshold, found["effect"], scale * found["sd"], *design,
                                            simulations=SIMULATIONS)[0] for scale in (1.0, 1.5)]
    return found | {"table": table, "pretrain_seeds": list(runs), "changes": changes or {}}


def text(key: str, found: dict) -> str:
    """What the pilot prints and what notebooks/pilots/<key>.txt holds."""
    entry = entry_of(key)
    changed = f" with {found['changes']} changed (exploration, not the registered setting)" if found["changes"] else ""
    return "\n".join([
        f"pilot of {key}: protocol {entry['protocol']}{changed}, standard profile, seeds {entry['pilot_seeds']}, "
        f"pretraining runs {found['pretrain_seeds']}, {entry.get('pilot_draws', 1)} draw(s) per seed and run",
        f"units = {found['units']} in {found['clusters']} clusters; difference = {entry['names'][0]} minus "
        f"{entry['names'][1]}",
        f"pilot_effect = {found['effect']:.4f}",
        f"pilot_sd = {found['sd']:.4f}",
        f"pilot_icc = {found['icc']:.2f}",
        f"at the registered {entry['units']} units in {entry.get('clusters', entry['units'])} clusters "
        f"({SIMULATIONS} simulated verdicts each): passes {100 * found['null_pass']:.1f}% at the threshold, "
        f"{100 * found['power'][0]:.1f}% at the pilot's effect and spread, {100 * found['power'][1]:.1f}% at "
        f"1.5x the spread",
        "arm means: " + ", ".join(f"{name} {value:.4f}" for name, value in found["table"].mean().items()),
        "", "units:", found["table"].round(4).to_string(), ""])


def _changes(pairs: list[str]) -> dict:
    """`["lr=0.01"]` -> `{"lr": 0.01}`, each value read as TOML (numbers, lists, quoted strings)."""
    changes = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            changes[name.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            raise SystemExit(f"--with {pair!r}: write NAME=VALUE with a TOML value, e.g. lr=0.01 or widths=[8, 32].")
        if not sep or not name.strip():
            raise SystemExit(f"--with {pair!r}: write NAME=VALUE, e.g. lr=0.01.")
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorlib.tools.pilot", description=__doc__.split("\n")[0])
    parser.add_argument("keys", nargs="+", metavar="key", help="a registry key of notebooks/verdicts.toml (or several: "
                        "keys that share a protocol and pilot seeds share one run of it)")
    parser.add_argument("--write", action="store_true", help="save each output as notebooks/pilots/<key>.txt")
    parser.add_argument("--with", dest="changes", action="append", default=[], metavar="NAME=VALUE",
                        help="run the protocol with this argument changed (a TOML value, e.g. lr=0.01)")
    args = parser.parse_args(argv)
    changes = _changes(args.changes)
    for key in args.keys:
        output = text(key, run(key, changes))
        print(output)
        if args.write:
            PILOTS.mkdir(exist_ok=True)
            suffix = "".join(f".{name}={value}" for name, value in changes.items())
            (PILOTS / f"{key}{suffix}.txt").write_text(output, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
