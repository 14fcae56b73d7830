"""6. Notebooks: wall time and peak memory of each chapter in the quick and standard profiles.

Runs `tutorlib.course.build` (a fresh kernel per chapter, as `make course` does) into
build/bench/<profile>/, or, with `--reuse`, reads the run.json that `make course` wrote there and in
build/ (say so in the results). Budgets (docs/design.md, section 6): quick <= 120 s per notebook and <= 12 min for
the seven; standard <= 5 min per notebook and <= 30 min for the seven.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from common import table

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = {"quick": (120, 12 * 60), "standard": (300, 30 * 60)}


def build(profile: str) -> dict:
    from tutorlib.tools import build

    out = ROOT / "build" / "bench" / profile
    os.environ["TUTORLIB_PROFILE"] = profile
    build.build(out_dir=out)
    return json.loads((out / "course" / "run.json").read_text())


def run(reuse: dict[str, Path] | None = None) -> tuple[list[dict], dict]:
    runs = {p: json.loads(reuse[p].read_text()) if reuse and p in reuse else build(p) for p in BUDGETS}
    rows = []
    for name in [c["name"] for c in runs["quick"]["chapters"]]:
        row = {"chapter": name}
        for profile, run_ in runs.items():
            ch = next(c for c in run_["chapters"] if c["name"] == name)
            per_notebook, _ = BUDGETS[profile]
            row[f"{profile} s (budget {per_notebook})"] = f"{ch['seconds']:.0f}" + (" FAILED" if ch["error"] else "")
            row[f"{profile} peak MiB"] = f"{ch['peak_mib']:.0f}"
        rows.append(row)
    total = {"chapter": "**all seven**"}
    for profile, run_ in runs.items():
        _, budget = BUDGETS[profile]
        total[f"{profile} s (budget {BUDGETS[profile][0]})"] = f"**{run_['seconds']:.0f}** (budget {budget})"
        total[f"{profile} peak MiB"] = f"{max(c['peak_mib'] for c in run_['chapters']):.0f} max"
    rows.append(total)
    met = all(c["seconds"] <= BUDGETS[p][0] and not c["error"] for p, r in runs.items() for c in r["chapters"]) \
        and all(r["seconds"] <= BUDGETS[p][1] for p, r in runs.items())
    facts = {p: {k: r[k] for k in ("date", "torch", "threads", "seconds")} for p, r in runs.items()}
    return rows, {"all_budgets_met": met, "runs": facts}


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
