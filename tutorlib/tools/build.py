"""`course build` and `confirm`: execute the chapters, write the write-up, compare with the reference run."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import i18n
from ..profile import current
from . import paths, translate, writeup
from .kernels import execute, stop_on_signals
from .student import student_version

def print_verdicts(chapters: list[dict]) -> None:
    """Every verdict of the run, one line each: which held, which failed, which are only reported."""
    for chapter in chapters:
        counts = {s: sum(v["status"] == s for v in chapter["verdicts"]) for s in ("PASS", "FAIL", "REPORTED")}
        print(f"{chapter['name']}: {counts['PASS']} held, {counts['FAIL']} failed, {counts['REPORTED']} reported")
        for v in chapter["verdicts"]:
            if v["status"] != "REPORTED":
                print(f"  {v['status']:4s} {v.get('shown', v['claim'])}")


def read_verdicts(results: Path) -> list[dict]:
    return [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []


def build(only: list[str] | None = None, out_dir: Path = paths.BUILD, keep_going: bool = False,
          save_reference: bool = False) -> int:
    """Execute the chapters, render them, write the write-up; return the number of failed chapters.

    save_reference: write this run as the reference run (notebooks/reference_run.json) that later builds
    compare themselves with; only a whole, clean standard run on the default seeds may be saved.
    """
    import nbformat

    profile = current().name
    chapters_found = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    chinese = i18n.language() == "zh"  # TUTORLIB_LANG=zh: the Chinese chapters, run where the English ones run
    only = [f"{int(o):02d}" if str(o).isdigit() else str(o) for o in only] if only else None  # 3 means 03
    selected = [p for p in chapters_found if not only or p.name[:2] in only]
    if not selected:  # before anything is written: a typo must not replace the last write-up with an empty one
        raise SystemExit(f"No chapter matches --only {' '.join(only or [])}: give two-digit numbers such as "
                         f"--only 01 03 (the chapters are {', '.join(p.name[:2] for p in chapters_found)}).")
    out_dir = out_dir.resolve()  # kernels run in notebooks/: a relative path would point elsewhere
    for sub in ("notebooks", "course/figures", "results"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    if chinese:
        made = {p.name: p for p in translate.generate(out_dir / "source", force=True)}
        selected = [made[p.name] for p in selected]
    chapters, started = [], time.perf_counter()
    for i, path in enumerate(selected, 1):
        t0 = time.perf_counter()
        stop_on_signals()
        print(f"[{i}/{len(selected)}] {path.name} ({profile}) ...", end=" ", flush=True)
        results = out_dir / "results" / f"{path.stem}.jsonl"
        try:
            nb, error, peak_mib = execute(path, results, keep_going=keep_going, run_in=paths.NOTEBOOKS)
        except KeyboardInterrupt as stop:
            why = str(stop) or "SIGINT"
            print(f"\nStopped ({why}) in {path.name} after {time.perf_counter() - t0:.0f} s; {i - 1} of "
                  f"{len(selected)} chapters were done (in {out_dir / 'notebooks'}); its kernel was shut down.")
            raise SystemExit(130 if why == "SIGINT" else 143) from None
        nbformat.write(nb, out_dir / "notebooks" / path.name)
        chapters.append(write_chapter(nb, path.stem, out_dir / "course", error, time.perf_counter() - t0,
                                      peak_mib, read_verdicts(results)))
        print(f"{'FAILED' if error else 'ok'} in {chapters[-1]['seconds']:.0f} s, peak {peak_mib:.0f} MiB"
              + (f": {error}" if error else ""))
    return finish_build(chapters, time.perf_counter() - started, out_dir, only, save_reference)


def write_chapter(nb, name: str, course_dir: Path, error: str | None, seconds: float, peak_mib: float,
                  verdicts: list[dict]) -> dict:
    """One executed chapter's page (class edition) and key figure; the record the index is built from."""
    title, claim = writeup.chapter_claim(nb)
    edition = "class edition: exercise solutions replaced by stubs"  # translated where the page is drawn
    page = student_version(nb, keep_outputs=True)
    writeup.render_chapter(page, course_dir / f"{name}.html", title or name, edition)
    figure = writeup.key_figure(nb)
    if figure:
        (course_dir / "figures" / f"{name}.png").write_bytes(figure)
    cites = writeup.cited_keys("\n".join(cell.source for cell in nb.cells))
    return {"name": name, "title": title, "claim": claim, "figure": figure is not None, "cites": cites, "error": error,
            "seconds": seconds, "peak_mib": peak_mib, "verdicts": verdicts}


def finish_build(chapters: list[dict], seconds: float, out_dir: Path, only: list[str] | None,
                 save_reference: bool) -> int:
    """The index, run.json and the comparison with the reference run; print the verdicts and the count."""
    prof = current()
    env = writeup.environment(paths.ROOT if paths.IN_CLONE else None, prof.name, list(prof.seeds), seconds, only)
    reference = _reference_run()
    comparison = writeup.compare(chapters, reference, prof.name, list(prof.seeds), env["registry"])
    bibliography = writeup.read_bibliography(paths.BIBLIOGRAPHY)
    index = writeup.write_index(chapters, env, comparison, bibliography, out_dir / "course")
    run = {"environment": env, "reference_run": comparison,
           "chapters": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in ch.items() if k != "verdicts"}
                        for ch in chapters]}
    (out_dir / "course" / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print_verdicts(chapters)
    print(i18n.text(writeup.comparison_line(comparison)))
    for vid, outcome in comparison.get("outcome", {}).items():
        if outcome != "agrees":
            print(f"  {outcome}: {vid[:140]}")
    failed = sum(1 for c in chapters if c["error"])
    if save_reference:
        save_reference_run(chapters, env, failed, only)
    print(f"Wrote {index} ({len(chapters)} chapters, {seconds / 60:.1f} min in all; seeds {list(prof.seeds)}).")
    return failed


def _reference_run() -> dict | None:
    """The committed reference run, or None (with a warning) when it is missing or damaged: the index still gets written."""
    if not paths.REFERENCE_RUN.exists():
        return None
    try:
        reference = json.loads(paths.REFERENCE_RUN.read_text())
        reference["environment"]["profile"], reference["environment"]["seeds"], reference["verdicts"]
        return reference
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        print(f"Warning: {paths.REFERENCE_RUN} is damaged ({type(err).__name__}: {err}); this build is not compared "
              f"with it. Restore it with `git checkout -- notebooks/reference_run.json`.")
        return None


def save_reference_run(chapters: list[dict], env: dict, failed: int, only: list[str] | None) -> None:
    """Keep this run as the reference, if it is one: standard, default seeds, every chapter, no failure."""
    from ..profile import PROFILES

    problems = [why for bad, why in [
        (env["profile"] != "standard", f"the profile is {env['profile']}, not standard"),
        (env["seeds"] != list(PROFILES["standard"].seeds), f"the seeds are {env['seeds']}, not the default ones"),
        (bool(only), "only some chapters ran"), (failed > 0, f"{failed} chapters failed"),
        (env["tree"] != "clean", f"the working tree is {env['tree']}")] if bad]
    if problems:
        raise SystemExit(f"Not saved as the reference run: {'; '.join(problems)}. Run "
                         f"`python -m tutorlib.course build --profile standard --save-reference` on a clean checkout.")
    paths.REFERENCE_RUN.write_text(json.dumps(writeup.reference_from(chapters, env), indent=1) + "\n")
    print(f"Saved {paths.REFERENCE_RUN} as the reference run: commit it.")
