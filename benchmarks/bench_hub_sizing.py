"""10. A class on one server: what one student's kernel costs, and how a chapter slows when K run it at once.

Run as root on the hub's server (it creates the accounts `tlsize1` ... and removes them after):

    sudo .venv/bin/python benchmarks/bench_hub_sizing.py --python /opt/pcnn/bin/python

`--python` is the students' environment (the README's /opt/pcnn, or the one `make hub-test` leaves under
/opt/tutorlib-hub-test/). Each chapter (the answered key, so every cell runs) is executed by that Python as a
student account, in the account's home, with the hub's kernel settings (`TUTORLIB_THREADS=1`, the profile),
exactly as a student's server would start the kernel. From the kernel's own resource usage (getrusage of the
finished child): peak resident memory and CPU seconds; and the wall time. Then K accounts run one chapter
at the same moment (K = 1, 2, 4), to see how the wall time grows with K on this machine's cores.
Writes build/bench/hub_sizing.json and prints the tables for benchmarks/RESULTS.md and the README.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import cpu

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ACCOUNTS = [f"tlsize{i}" for i in range(1, 5)]
RUNNER = """
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
start = time.perf_counter()
NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
wall = time.perf_counter() - start
used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, ended and waited for
print(json.dumps({"wall_s": round(wall, 1), "cpu_s": round(used.ru_utime + used.ru_stime, 1),
                  "peak_mib": round(used.ru_maxrss / 1024)}))
"""


def run_as(user: str, python: str, chapter: Path, profile: str) -> dict:
    """Execute `chapter` as `user` with the students' Python; the kernel's wall time, CPU time and peak memory."""
    folder = Path(tempfile.mkdtemp(prefix="size-", dir=f"/home/{user}"))
    shutil.copy(chapter, folder / chapter.name)
    (folder / "runner.py").write_text(RUNNER)
    subprocess.run(["chown", "-R", f"{user}:{user}", str(folder)], check=True)
    env = [f"HOME=/home/{user}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", f"TUTORLIB_PROFILE={profile}",
           "TUTORLIB_THREADS=1", "OMP_NUM_THREADS=1", "TUTORLIB_HEADLESS=1"]
    ran = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "env", "-i", *env,
                          python, str(folder / "runner.py"), str(folder / chapter.name), str(folder)],
                         capture_output=True, text=True, cwd=folder)
    shutil.rmtree(folder, ignore_errors=True)
    if ran.returncode:
        raise SystemExit(f"{chapter.name} ({profile}) failed as {user}:\n{ran.stderr[-3000:]}")
    return json.loads(ran.stdout.strip().splitlines()[-1])


def together(k: int, python: str, chapter: Path, profile: str) -> list[dict]:
    """K accounts start the same chapter at the same moment."""
    with ThreadPoolExecutor(k) as pool:
        return list(pool.map(lambda user: run_as(user, python, chapter, profile), ACCOUNTS[:k]))


def tables(result: dict, server_mib: float) -> str:
    """The measured kernels, how K at once slowed down, and what a server for N students needs (TLJH's rule)."""
    rows = {}
    for r in result["chapters"]:
        rows.setdefault(r["chapter"], {"chapter": r["chapter"]})
        rows[r["chapter"]].update({f"{r['profile']} wall s": r["wall_s"], f"{r['profile']} CPU s": r["cpu_s"],
                                    f"{r['profile']} peak MiB": r["peak_mib"]})
    alone = next(t for t in result["together"] if t["k"] == 1)
    slowdown = [{"K at once": t["k"], "wall s each": ", ".join(f"{w:.0f}" for w in t["wall_s"]),
                 "vs alone": f"{max(t['wall_s']) / alone['wall_s'][0]:.2f}x",
                 "model max(1, K/C)": f"{max(1, t['k'] / result['cores']):.2f}x"} for t in result["together"]]
    sizing = []
    for profile in sorted({r["profile"] for r in result["chapters"]}, reverse=True):
        peak = max(r["peak_mib"] for r in result["chapters"] if r["profile"] == profile)
        for n in (20, 40, 60):
            busy = round(0.6 * n)
            gib = (busy * (peak + server_mib) + (n - busy) * server_mib + 128) / 1024
            sizing.append({"profile": profile, "students": n, "at work (60%)": busy,
                           "memory GiB": f"{gib:.0f}", "cores: no slow-down": math.ceil(1.2 * busy),
                           "cores: runs take 2x": math.ceil(1.2 * busy / 2)})
    from common import table

    return "\n\n".join([table(list(rows.values())), table(slowdown), table(sizing)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the students' environment's Python")
    parser.add_argument("--profiles", default="quick,standard")
    parser.add_argument("--together", default="ch07:quick", help="CHAPTER:PROFILE run by K accounts at once")
    parser.add_argument("--tables", type=Path, help="print the tables from a hub_sizing.json and stop")
    parser.add_argument("--server-mib", type=float, default=160, help="a student's server without its kernel")
    args = parser.parse_args()
    if args.tables:
        print(tables(json.loads(args.tables.read_text()), args.server_mib))
        return
    if os.geteuid() != 0:
        raise SystemExit("Run it as root: it runs each chapter as a student account (and creates tlsize1-4).")
    made = [u for u in ACCOUNTS if subprocess.run(["id", "-u", u], capture_output=True).returncode]
    for user in made:
        subprocess.run(["useradd", "--create-home", user], check=True)
    try:
        result = {"cpu": cpu(), "cores": os.cpu_count(), "python": args.python, "date": time.strftime("%Y-%m-%dT%H:%M"),
                  "chapters": [], "together": []}
        for profile in args.profiles.split(","):
            for chapter in CHAPTERS:
                row = {"chapter": chapter.stem, "profile": profile, **run_as(ACCOUNTS[0], args.python, chapter, profile)}
                print(row, flush=True)
                result["chapters"].append(row)
        name, profile = args.together.split(":")
        chapter = next(c for c in CHAPTERS if c.name.startswith(name[-2:]))
        for k in (1, 2, 4):
            runs = together(k, args.python, chapter, profile)
            row = {"chapter": chapter.stem, "profile": profile, "k": k, "wall_s": [r["wall_s"] for r in runs],
                   "cpu_s": [r["cpu_s"] for r in runs]}
            print(row, flush=True)
            result["together"].append(row)
    finally:
        for user in made:
            subprocess.run(["pkill", "-9", "-u", user], capture_output=True)
            subprocess.run(["userdel", "--remove", user], capture_output=True)
    out = ROOT / "build" / "bench" / "hub_sizing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
