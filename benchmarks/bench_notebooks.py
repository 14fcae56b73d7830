"""6. Notebooks: wall time and peak memory of each chapter in the quick and standard profiles.

Runs `tutorlib.course.build` (a fresh kernel per chapter, as `make course` does) into
build/bench/<profile>/, or, with `--reuse`, reads the run.json that `make course` wrote there and in
build/ (say so in the results). Budgets (docs/design.md, section 6): quick <= 120 s per notebook (180 s for the
chapters with an ImageNet Lite0 section: 2, 3, 4 and 6); standard <= 5 min (6 min for those) and <= 35 min for the
seven. The quick run's total has no budget of its own: `make test` (<= 12 min) is what a quick build is for.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from common import table

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = {"quick": (120, None), "standard": (300, 35 * 60)}  # per notebook, all seven
LITE_CHAPTERS = ("02", "03", "04", "06")  # a Lite0 section: one minute more


def budget(profile: str, chapter: str) -> int:
    return BUDGETS[profile][0] + (60 if chapter[:2] in LITE_CHAPTERS else 0)


def build(profile: str) -> dict:
    from tutorlib.tools import build

    out = ROOT / "build" / "bench" / profile
    os.environ["TUTORLIB_PROFILE"] = profile
    build.build(out_dir=out)
    return json.loads((out / "course" / "run.json").read_text())


def run(reuse: dict[str, Path] | None = None) -> tuple[list[dict], dict]:
    runs = {p: json.loads(reuse[p].read_text()) if reuse and p in reuse else build(p) for p in BUDGETS}
    runs = {p: {**r.get("environment", {}), **r} for p, r in runs.items()}  # run.json keeps date and seconds there
    rows = []
    for name in [c["name"] for c in runs["quick"]["chapters"]]:
        row = {"chapter": name}
        for profile, run_ in runs.items():
            ch = next(c for c in run_["chapters"] if c["name"] == name)
            row[f"{profile} s (budget)"] = f"{ch['seconds']:.0f} ({budget(profile, name)})" + (
                " FAILED" if ch["error"] else "")
            row[f"{profile} peak MiB"] = f"{ch['peak_mib']:.0f}"
        rows.append(row)
    total = {"chapter": "**all seven**"}
    for profile, run_ in runs.items():
        total_budget = BUDGETS[profile][1]
        total[f"{profile} s (budget)"] = f"**{run_['seconds']:.0f}**" + (f" ({total_budget})" if total_budget else "")
        total[f"{profile} peak MiB"] = f"{max(c['peak_mib'] for c in run_['chapters']):.0f} max"
    rows.append(total)
    met = all(c["seconds"] <= budget(p, c["name"]) and not c["error"] for p, r in runs.items() for c in r["chapters"]) \
        and all(r["seconds"] <= (BUDGETS[p][1] or r["seconds"]) for p, r in runs.items())
    facts = {p: {k: r.get(k) for k in ("date", "commit", "torch", "threads", "cpu", "seconds")} for p, r in runs.items()}
    return rows, {"all_budgets_met": met, "runs": facts}


if __name__ == "__main__":
    rows, facts = run()
    print(table(rows)), print(facts)
