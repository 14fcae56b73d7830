"""`make bench`: run every benchmark in one process, one after another, and rewrite RESULTS.md.

    python benchmarks/run_all.py                 # everything, notebooks included (about 40 min on 2 cores)
    python benchmarks/run_all.py --skip-notebooks
    python benchmarks/run_all.py --reuse-notebook-runs   # notebook figures from the last `make course` runs

Never run two benchmarks (or a benchmark and the tests) at once: they share the cores.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_cache  # noqa: E402
import bench_data  # noqa: E402
import bench_engine  # noqa: E402
import bench_eval_batch  # noqa: E402
import bench_load  # noqa: E402
import bench_loop  # noqa: E402
import bench_notebooks  # noqa: E402
import bench_probe  # noqa: E402
import bench_time_to_accuracy  # noqa: E402
import bench_utilisation  # noqa: E402
from common import machine, table  # noqa: E402

SECTIONS = {"loop": bench_loop, "data": bench_data, "probe": bench_probe, "cache": bench_cache,
            "time_to_accuracy": bench_time_to_accuracy, "utilisation": bench_utilisation, "engine": bench_engine,
            "eval_batch": bench_eval_batch}
NOTES = HERE / "NOTES.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--skip-load", action="store_true", help="skip 7, the runs beside a busy process")
    parser.add_argument("--reuse-notebook-runs", action="store_true",
                        help="read build/bench/quick/course/run.json and build/course/run.json instead of building")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)
    started, rows, facts = time.perf_counter(), [], {}
    for name, module in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        section_rows, facts[name] = module.run()
        rows += section_rows
        print(table(section_rows), f"\n({time.perf_counter() - t0:.0f} s)\n", flush=True)
    notebook_rows = None
    if not args.skip_notebooks and not args.only:
        reuse = {"quick": HERE.parent / "build/bench/quick/course/run.json",
                 "standard": HERE.parent / "build/course/run.json"} if args.reuse_notebook_runs else None
        notebook_rows, facts["notebooks"] = bench_notebooks.run(reuse)
        print(table(notebook_rows))
    load_rows = None
    if not args.skip_load and not args.only:
        load_rows, facts["load"] = bench_load.run()
        print(table(load_rows))
    write_results(rows, notebook_rows, facts, time.perf_counter() - started, args.reuse_notebook_runs, load_rows)


def write_results(rows, notebook_rows, facts, seconds: float, reused: bool, load_rows=None) -> None:
    parts = [f"# Benchmarks\n\nWritten by `make bench` (`benchmarks/run_all.py`) on "
             f"{datetime.datetime.now().isoformat(timespec='minutes')}: {machine()}; "
             f"{seconds / 60:.1f} min in all. Every ratio is measured within this one run, with the arms "
             f"interleaved (A B A B ...); times are medians with (min-max) over the repeats. "
             f"How each figure is measured is in the docstring of its `bench_*.py`.\n",
             table(rows)]
    if notebook_rows:
        source = ("read from the `make course` runs of the same day (build/course/run.json, "
                  "build/bench/quick/course/run.json)" if reused else "built by this run")
        parts += [f"\n## 6. Notebooks: wall time and peak memory (a fresh kernel per chapter; {source})\n",
                  table(notebook_rows)]
    if load_rows:
        parts += ["\n## 7. Beside a busy process: thread policies (`bench_load.py`)\n", table(load_rows)]
    parts += ["\n## Setup and raw facts\n", "```json", json.dumps(facts, indent=1, default=str), "```"]
    if NOTES.exists():
        parts += ["\n" + NOTES.read_text()]
    (HERE / "RESULTS.md").write_text("\n".join(parts) + "\n")
    print(f"Wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
