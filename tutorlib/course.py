"""Build the reproducible write-up: execute every chapter and render HTML with its verdicts.

    python -m tutorlib.course build [--profile standard] [--only 01 03]

Executed notebooks go to build/notebooks/, HTML pages and index.html to build/course/. Each
chapter's `check.expect` verdicts are collected through $TUTORLIB_RESULTS into
build/results/<chapter>.jsonl. A chapter that fails is marked failed in the index, with its error;
the others still build.
"""
from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import platform
import time
from pathlib import Path

import torch

from .profile import ENV_VAR, current

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"


def execute(path: Path, results: Path, timeout: int = 1800) -> tuple[object, str | None]:
    """Run one notebook top to bottom in a fresh kernel; return (executed notebook, error or None)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    results.unlink(missing_ok=True)
    os.environ["TUTORLIB_RESULTS"] = str(results)
    os.environ["TUTORLIB_HEADLESS"] = "1"  # explorers draw static figures: nobody can press their buttons
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
        return nb, None
    except CellExecutionError as err:
        return nb, str(err).strip().splitlines()[-1]
    except Exception as err:  # kernel died, timeout ...
        return nb, f"{type(err).__name__}: {err}"


def read_verdicts(results: Path) -> list[dict]:
    return [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []


def render_html(nb, out: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    out.write_text(body, encoding="utf-8")


def _verdict_rows(verdicts: list[dict]) -> str:
    rows = []
    for v in verdicts:
        numbers = ", ".join(f"{k}={v2}" for k, v2 in v["numbers"].items())
        rows.append(f"<tr class='{v['status'].lower()}'><td>{v['status']}</td><td>{html.escape(v['claim'])}</td>"
                    f"<td><code>{html.escape(numbers)}</code></td></tr>")
    return "\n".join(rows) or "<tr><td colspan=3>no verdicts recorded</td></tr>"


def write_index(chapters: list[dict], profile: str, seconds: float) -> Path:
    """build/course/index.html: chapters, their verdicts with numbers, and how the run was made."""
    sections = []
    for ch in chapters:
        status = "failed: " + html.escape(ch["error"]) if ch["error"] else "ran"
        sections.append(f"<h2><a href='{ch['name']}.html'>{ch['name']}</a></h2>"
                        f"<p>{status} in {ch['seconds']:.0f} s</p>"
                        f"<table><tr><th>status</th><th>claim</th><th>measured</th></tr>"
                        f"{_verdict_rows(ch['verdicts'])}</table>")
    meta = (f"profile <b>{profile}</b>, total runtime {seconds / 60:.1f} min, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}, "
            f"built {datetime.datetime.now().isoformat(timespec='minutes')}")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Pretrained CNNs, tested</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:4px;text-align:left;vertical-align:top}}
tr.pass td:first-child{{color:#1a7f37}}tr.fail td:first-child{{color:#cf222e}}tr.reported td:first-child{{color:#9a6700}}</style>
</head><body><h1>Pretrained CNNs, tested: the write-up</h1><p>{meta}</p>{''.join(sections)}</body></html>"""
    out = BUILD / "course" / "index.html"
    out.write_text(page, encoding="utf-8")
    return out


def build(only: list[str] | None = None) -> int:
    """Execute the chapters, render them, write the index; return the number of failed chapters."""
    profile = current().name
    for sub in ("notebooks", "course", "results"):
        (BUILD / sub).mkdir(parents=True, exist_ok=True)
    paths = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if not only or p.name[:2] in only]
    chapters, started = [], time.perf_counter()
    for i, path in enumerate(paths, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(paths)}] {path.name} ({profile}) ...", end=" ", flush=True)
        results = BUILD / "results" / f"{path.stem}.jsonl"
        nb, error = execute(path, results)
        import nbformat

        nbformat.write(nb, BUILD / "notebooks" / path.name)
        render_html(nb, BUILD / "course" / f"{path.stem}.html")
        seconds = time.perf_counter() - t0
        chapters.append({"name": path.stem, "error": error, "seconds": seconds, "verdicts": read_verdicts(results)})
        print(f"{'FAILED' if error else 'ok'} in {seconds:.0f} s" + (f": {error}" if error else ""))
    index = write_index(chapters, profile, time.perf_counter() - started)
    print(f"Wrote {index} ({len(chapters)} chapters, {time.perf_counter() - started:.0f} s in all).")
    return sum(1 for c in chapters if c["error"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the course write-up under build/.")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--profile", help=f"quick / standard / full (default: ${ENV_VAR} or standard)")
    parser.add_argument("--only", nargs="*", help="chapter numbers to build, e.g. 01 03")
    args = parser.parse_args(argv)
    if args.profile:
        os.environ[ENV_VAR] = current(args.profile).name
    raise SystemExit(1 if build(args.only) else 0)


if __name__ == "__main__":
    main()
