"""A class on one server: JupyterHub with its real proxy, 20 students as system users, nbgrader's exchange.

`make hub-test` runs it (`.ci/run` after `make test`): root on Linux, `configurable-http-proxy` on PATH
(npm), `/usr/bin/python3` for the students' environment (the students' wheel: no solutions; cached under
/opt/tutorlib-hub-test/). Everything goes through the folder `python -m tutorlib.course hub` writes and the
scripts in it, run as the README says: setup.sh, as-grader.sh, autograde.sh.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "tests" / "fixtures" / "mini_chapter.ipynb"
REAL, CHAPTER = "ch07", ROOT / "notebooks" / "07_choosing_a_model.ipynb"  # the quickest chapter, for the browser
COURSE, TEACHER, GRADER = "pcnn", "hubteach", "grader-pcnn"
STUDENTS = [f"hubs{i:02d}" for i in range(1, 21)]
PORT, HUB_PORT, API_PORT = 18500, 18581, 18501
TOKEN = hashlib.sha256(os.urandom(16)).hexdigest()
ENV_CACHE = Path("/opt/tutorlib-hub-test")
RIGHT = {1: "n_params = analysis.count_params(model)", 2: "n_groups = len(surgery.layer_groups(model))",
         3: "last_group = surgery.layer_groups(model)[-1][0]"}
WRONG = {1: "n_params = 1", 2: "n_groups = 99", 3: "last_group = 'stem'"}

pytestmark = pytest.mark.hub


def _why_not_here() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (it creates system users)"
    for tool in ("setpriv", "useradd", "configurable-http-proxy"):
        if not shutil.which(tool):
            return f"{tool} is not on PATH (npm install -g configurable-http-proxy; util-linux; passwd)"
    if not Path("/usr/bin/python3").exists():
        return "no /usr/bin/python3 for the students' environment"
    return None


@pytest.fixture(scope="module", autouse=True)
def _runs_here():
    reason = _why_not_here()
    if reason and os.environ.get("TUTORLIB_HUB_TESTS") == "required":
        pytest.fail(f"TUTORLIB_HUB_TESTS=required but {reason}")
    if reason:
        pytest.skip(reason)


def readme_hub_commands() -> list[str]:
    """The README's plain-server commands that name the hub folder, in order (TLJH's start with sudo)."""
    import re

    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if "/srv/pcnn-hub" in line and not line.startswith(("sudo", "for "))]


def as_written(command: str, folder: Path, python: str) -> str:
    """A README command with this test's places: the hub folder, the roster, the students' Python, the mini chapter."""
    for old, new in (("/srv/pcnn-hub", str(folder / "hub")), ("class.csv", str(folder / "class.csv")),
                     ("/opt/pcnn/bin/python", python), ("--teacher alice", f"--teacher {TEACHER}"),
                     (" ch07", " mini"), (".venv/bin/python", sys.executable)):
        command = command.replace(old, new)
    return command


def students_python() -> str:
    """A Python every account can run, with the students' wheel (no solutions), JupyterHub and nbgrader.

    The README builds this environment whole from a wheelhouse (6 GB with torch); so does the test where this
    run's environment is not readable by other accounts. Where it is, the test installs only the students' wheel,
    JupyterHub and nbgrader and borrows the other packages (torch, timm, ...) through a .pth path line, which adds
    no .pth processing: the clone's editable tutorlib (the key) is not importable there, as checked below.
    Borrowing brings a package's Python files only, so the packages that also install files beside them are
    installed: JupyterLab's pages and extensions and their server settings (share/ and etc/jupyter), and alembic,
    whose command nbgrader runs from PATH.
    """
    dist = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "tutorlib.course", "wheel", "--students", "--out", str(dist)], check=True,
                   capture_output=True, cwd=ROOT)
    wheel = next(dist.glob("*.whl"))
    env = ENV_CACHE / hashlib.sha256(wheel.read_bytes()).hexdigest()[:12]
    if not (env / "ready").exists():
        shutil.rmtree(ENV_CACHE, ignore_errors=True)  # one cached environment at a time
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(env)], check=True)
        borrowed = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
        if _readable_by_all(borrowed):
            site = next((env / "lib").glob("python3*/site-packages"))
            (site / "zz_borrowed.pth").write_text(f"{borrowed}\n")
        own = _jupyter_data_packages(borrowed) if _readable_by_all(borrowed) else []
        subprocess.run([str(env / "bin" / "pip"), "install", "--quiet", *(["--no-deps", "--ignore-installed"]
                        if own else []), str(wheel), "jupyterhub", "nbgrader", "alembic", *own], check=True)
        (env / "ready").touch()
    shutil.rmtree(dist)
    python = str(env / "bin" / "python")
    where = Path(subprocess.run([python, "-c", "import tutorlib, nbgrader, torch; print(tutorlib.__file__)"],
                                capture_output=True, text=True, check=True, cwd="/").stdout.strip()).parent
    chapters = sorted((where / "course_notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert where.is_relative_to(env) and len(chapters) == 7, where  # the students' edition, not the clone's key
    assert not any("BEGIN SOLUTION" in p.read_text() for p in chapters)
    return python


def _jupyter_data_packages(site: Path) -> list[str]:
    """Packages in `site` that install Jupyter's front-end files or server settings (share/jupyter, etc/jupyter)."""
    from importlib.metadata import distributions

    return sorted({f'{d.metadata["Name"]}=={d.version}' for d in distributions(path=[str(site)])
                   if any(str(f).startswith(("../../../share/jupyter", "../../../etc/jupyter")) for f in d.files or [])})


def _readable_by_all(path: Path) -> bool:
    """Every folder on the way can be entered by other accounts, and the last one read."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents]) and bool(path.stat().st_mode & 0o004)


class Hub:
    def __init__(self, folder: Path, python: str):
        self.folder, self.python, self.url = folder, python, f"http://127.0.0.1:{PORT}"
        self.tokens: dict[str, str] = {}

    def api(self, method: str, path: str, token: str = TOKEN, **kwargs):
        import requests

        return requests.request(method, f"{self.url}{path}", headers={"Authorization": f"token {token}"}, timeout=60,
                                **kwargs)

    def as_user(self, user: str, code: str) -> subprocess.CompletedProcess:
        """Python code run as `user` (a student trying things), with the students' environment."""
        return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "env", "-i",
                               f"HOME=/home/{user}", self.python, "-c", code], capture_output=True, text=True, cwd="/")


@pytest.fixture(scope="module")
def hub():
    python = students_python()
    folder = Path(tempfile.mkdtemp(prefix="hub-"))
    folder.chmod(0o755)
    (folder / "class.csv").write_text("username,first_name\n" + "".join(f"{s},{s.upper()}\n" for s in STUDENTS))
    made = [u for u in [TEACHER, GRADER, *STUDENTS] if subprocess.run(["id", "-u", u], capture_output=True).returncode]
    write, setup, start = readme_hub_commands()[:3]
    assert " hub --roster " in write and setup.endswith("setup.sh") and " -f jupyterhub_config.py" in start
    extra = (f" --assignment mini={MINI} --assignment {REAL}={CHAPTER} --profile quick"  # the mini chapter for the class,
             f" --exchange {folder / 'exchange'}")  # a real one for the browser student; an exchange of its own
    subprocess.run(as_written(write, folder, python) + extra, shell=True, check=True, cwd=ROOT)
    try:
        yield from _started(Hub(folder, python), folder, python, setup)
    finally:
        _clean_up(folder, made)


def _started(h: Hub, folder: Path, python: str, setup: str):
    """setup.sh as written, then JupyterHub on the generated config; yields the hub, stops it after."""
    ran = subprocess.run(as_written(setup, folder, python), shell=True, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-3000:]
    (folder / "run").mkdir()  # the README's `jupyterhub -f jupyterhub_config.py`, with test ports and an admin token
    (folder / "run" / "test_config.py").write_text(f"""
c = get_config()  # noqa
load_subconfig({str(folder / 'hub' / 'jupyterhub_config.py')!r})  # the generated config, as written
c.JupyterHub.bind_url = "http://127.0.0.1:{PORT}"
c.JupyterHub.hub_port = {HUB_PORT}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{API_PORT}"
c.Spawner.start_timeout = c.Spawner.http_timeout = 300  # twenty servers starting at once on two cores
c.JupyterHub.services.append({{"name": "tester", "api_token": {TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "tester", "services": ["tester"],
                                "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]}})
""")
    stop_proxy()  # one a crashed run left behind would answer our hub with 403
    log = open(folder / "run" / "hub.log", "w")
    process = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(folder / "run" / "test_config.py")],
                               cwd=folder / "run", stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(60):
            time.sleep(1)
            try:
                if h.api("GET", "/hub/api/users").status_code == 200:
                    break
            except OSError:
                continue
        else:
            log_text = (folder / "run" / "hub.log").read_text()
            raise AssertionError("\n".join(line for line in log_text.splitlines()
                                           if "rror" in line or "Traceback" in line or "[E " in line)[:3000])
        yield h
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _clean_up(folder: Path, made: list[str]) -> None:
    """The proxy, every process of the test's accounts, the accounts it made, its folder."""
    stop_proxy()  # the proxy is a session of its own: the hub stops it, unless the hub died first
    for user in [TEACHER, GRADER, *STUDENTS]:  # their servers outlive a hub that was killed
        subprocess.run(["pkill", "-9", "-u", user], capture_output=True)
    time.sleep(1)
    for user in made:
        subprocess.run(["userdel", "--remove", user], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def stop_proxy() -> None:
    subprocess.run(["pkill", "-f", f"configurable-http-proxy.*--api-port {API_PORT}"], capture_output=True)


def start_servers(hub: Hub, users: list[str]) -> None:
    for user in users:
        assert hub.api("POST", f"/hub/api/users/{user}/server").status_code in (201, 202), user
    deadline = time.time() + 400
    waiting = set(users)
    while waiting and time.time() < deadline:
        time.sleep(2)
        waiting = {u for u in waiting if not hub.api("GET", f"/hub/api/users/{u}").json()["servers"].get("", {}).get("ready")}
    assert not waiting, f"servers not ready: {sorted(waiting)}"
    for user in users:
        hub.tokens[user] = hub.api("POST", f"/hub/api/users/{user}/tokens", json={"note": "test"}).json()["token"]


def answer(hub: Hub, user: str, answers: dict[int, str]) -> None:
    """Write `answers` (exercise number -> code) into the fetched notebook, through the server's contents API."""
    path = f"/user/{user}/api/contents/{COURSE}/mini/mini.ipynb"
    nb = hub.api("GET", path, hub.tokens[user]).json()["content"]
    solutions = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    for number, code in answers.items():
        solutions[number - 1]["source"] = code
    put = hub.api("PUT", path, hub.tokens[user], json={"type": "notebook", "format": "json", "content": nb})
    assert put.status_code in (200, 201), put.text


def exchange(hub: Hub, user: str, action: str) -> dict:
    reply = hub.api("POST", f"/user/{user}/assignments/{action}", hub.tokens[user],
                    data={"course_id": COURSE, "assignment_id": "mini"})
    assert reply.status_code == 200 and reply.json()["success"], (user, action, reply.text[:500])
    return reply.json()


ATTACK = """import os
for target, mode in (({key!r}, 'r'), ({gradebook!r}, 'a')):
    try:
        open(target, mode).close()
        print('REACHED', target)
    except OSError as err:
        print('refused:', type(err).__name__, target)
"""


def plan(index: int) -> tuple[dict[int, str], int]:
    """What student `index` answers, and the score that earns: all right, one right, all wrong, or nothing."""
    kind = index % 4
    if kind == 1:
        return dict(RIGHT), 3
    if kind == 2:
        return {1: RIGHT[1], 2: WRONG[2]}, 1
    if kind == 3:
        return dict(WRONG), 0
    return {}, 0


def test_a_class_of_twenty_fetches_answers_submits_and_gets_what_it_earned(hub):
    start_servers(hub, STUDENTS)
    home = Path(f"/home/{GRADER}/{COURSE}")
    key = home / "source" / "mini" / "mini.ipynb"
    key_before = key.read_bytes()
    expected = {}
    for i, student in enumerate(STUDENTS, 1):
        listed = exchange(hub, student, "fetch")
        assert [a["status"] for a in listed["value"] if a["assignment_id"] == "mini"] == ["fetched"], listed
        answers, expected[student] = plan(i)
        if student == "hubs06":  # a submission that tries, at autograde time, to read the key and write the gradebook
            answers[1] = ATTACK.format(key=str(key), gradebook=str(home / "gradebook.db")) + RIGHT[1]
        if student == "hubs05":  # submits all wrong first, then all right: the second replaces the first
            answer(hub, student, dict(WRONG))
            exchange(hub, student, "submit")
            time.sleep(1.1)  # nbgrader orders submissions by their timestamp
            answers, expected[student] = dict(RIGHT), 3
        answer(hub, student, answers)
        exchange(hub, student, "submit")

    servers = {student: _server_usage(student) for student in STUDENTS}  # after fetch and submit: the exchange loaded
    assert not [s for s, u in servers.items() if u["torch"]], "a student's server loaded torch (0.6 GB each)"
    _record("hub-servers.json", {s: u["rss_mib"] for s, u in servers.items()})

    scores = graded(hub, "mini")
    assert scores == {s: float(v) for s, v in expected.items()}, scores

    attacked = nbformat.read(home / "autograded" / "hubs06" / "mini" / "mini.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in attacked.cells for o in c.get("outputs", []))
    assert printed.count("refused: PermissionError") == 2 and "REACHED" not in printed, printed
    assert key.read_bytes() == key_before


def graded(hub: Hub, assignment: str) -> dict[str, float]:
    """The README's grading block as written (collect, autograde.sh, export) for `assignment`; its raw scores."""
    import csv

    collect, autograde, export = readme_hub_commands()[3:6]
    assert "collect" in collect and "autograde.sh" in autograde and "export" in export
    for command in (collect, autograde, export):
        command = as_written(command, hub.folder, hub.python).replace(" mini", f" {assignment}")
        ran = subprocess.run(command, shell=True, capture_output=True, text=True)
        assert ran.returncode == 0, (command, ran.stderr[-3000:])
    with open(Path(f"/home/{GRADER}/{COURSE}/grades.csv")) as f:
        return {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f) if row["assignment"] == assignment}


def _only_process(user: str, command: str) -> Path:
    """/proc/PID of the one process of `user` whose command line holds `command`."""
    pids = subprocess.run(["pgrep", "-u", user, "-f", command], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, (user, command, pids)
    return Path(f"/proc/{pids[0]}")


def _server_usage(user: str) -> dict:
    """A student's Jupyter server: its resident memory (MiB) and whether torch is mapped into it."""
    proc = _only_process(user, "jupyterhub-singleuser")
    rss_kib = int(re.search(r"VmRSS:\s+(\d+) kB", (proc / "status").read_text()).group(1))
    return {"rss_mib": round(rss_kib / 1024), "torch": "libtorch" in (proc / "maps").read_text()}


def _record(name: str, values: dict) -> None:
    """Keep a measurement for the sizing notes (build/, not committed)."""
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / name).write_text(json.dumps(values, indent=1))


def test_a_student_cannot_reach_another_students_work_the_key_or_the_gradebook(hub):
    exchange_root = hub.folder / "exchange"
    inbound = exchange_root / COURSE / "inbound"
    others = sorted(p for p in inbound.iterdir() if p.name.startswith("hubs04+"))  # found as root: the names are secret
    assert others, "hubs04 has a submission"
    other_file = others[-1] / "mini.ipynb"
    attempts = {
        "list the inbound folder": f"os.listdir({str(inbound)!r})",
        "read another's submission": f"open({str(other_file)!r}).read()",
        "change another's submission": f"open({str(other_file)!r}, 'a').write('x')",
        "read another's home": "os.listdir('/home/hubs04')",
        "read the answer key": f"open('/home/{GRADER}/{COURSE}/source/mini/mini.ipynb').read()",
        "write the gradebook": f"open('/home/{GRADER}/{COURSE}/gradebook.db', 'a').write('x')",
        "make a course in the exchange": f"os.mkdir({str(exchange_root / 'mine')!r})",
        "change a released assignment": f"open({str(exchange_root / COURSE / 'outbound' / 'mini' / 'mini.ipynb')!r}, 'a').write('x')",
    }
    for what, code in attempts.items():
        tried = hub.as_user("hubs03", f"import os\ntry:\n    {code}\n    print('ALLOWED')\nexcept PermissionError:\n    print('DENIED')")
        assert tried.stdout.strip() == "DENIED", (what, tried.stdout, tried.stderr[-500:])
    assert oct(exchange_root.stat().st_mode & 0o777) == "0o755" and exchange_root.stat().st_uid == 0


def test_saved_work_survives_a_stopped_server(hub):
    student = "hubs07"
    path = f"/user/{student}/api/contents/notes.txt"
    text = "my notes before the server stopped\n"
    assert hub.api("PUT", path, hub.tokens[student], json={"type": "file", "format": "text", "content": text}).ok
    assert hub.api("DELETE", f"/hub/api/users/{student}/server").status_code in (202, 204)
    for _ in range(60):
        time.sleep(1)
        if not hub.api("GET", f"/hub/api/users/{student}").json()["servers"]:
            break
    start_servers(hub, [student])
    assert hub.api("GET", path, hub.tokens[student]).json()["content"] == text


# ----------------------------------------------------------------------------- a student in a browser
BROWSER_STUDENT = STUDENTS[-1]
ANSWERS = {  # chapter 7's exercises, typed as a student would: the answer cell's first line names the variable
    "flops_w16 = None": "flops_w16 = analysis.count_flops(models.small_cnn(16, 4, 5), (1, 28, 28))",
    "best_under_budget = None": 'best_under_budget = summary[summary["latency b64 (ms)"] <= 10]["probe accuracy"].idxmax()',
    "logme_pixels = None": "logme_pixels = analysis.logme(sources.pixels(target0), target0[1])",
}


def _lab_settings(user: str) -> None:
    """The test's JupyterLab settings in the student's home (every cell in the page; no news pop-up)."""
    from test_lab_session import SETTINGS

    for name, values in SETTINGS.items():
        path = Path(f"/home/{user}/.jupyter/lab/user-settings") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    subprocess.run(["chown", "-R", f"{user}:{user}", f"/home/{user}/.jupyter"], check=True)


def _kernel_usage(user: str) -> dict[str, float]:
    """Peak memory (MiB) and CPU seconds of the user's notebook kernel, read from /proc while it still runs."""
    proc = _only_process(user, "ipykernel_launcher")
    peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", (proc / "status").read_text()).group(1))
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return {"peak_mib": round(peak_kib / 1024), "cpu_s": round(cpu, 1)}


def test_a_student_in_chromium_fetches_runs_and_submits_a_real_chapter(hub):
    """hubs20 logs in, fetches chapter 7 from the Assignments tab, answers, runs it all, submits; it earns 3 of 3."""
    from test_lab_session import CHROMIUM, SHOWN, browser, save

    sync_playwright = browser()
    student, password = BROWSER_STUDENT, hashlib.sha256(os.urandom(8)).hexdigest()[:16]
    subprocess.run(["chpasswd"], input=f"{student}:{password}\n", text=True, check=True)
    _lab_settings(student)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", student)
        page.fill("#password_input", password)
        page.click("#login_submit")
        page.wait_for_selector(".jp-LabShell", timeout=300_000)

        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
        released = page.locator("#released_assignments_list .list_item", has_text=REAL)
        released.locator("button", has_text="Fetch").click(timeout=60_000)
        fetched = page.locator("#fetched_assignments_list .list_item", has_text=REAL).first
        fetched.locator("a.assignment-notebooks-link").click(timeout=60_000)
        page.locator("#fetched_assignments_list a", has_text=REAL).last.click()  # the notebook, in a new tab
        page.wait_for_selector(f"{SHOWN} .jp-CodeCell", timeout=60_000)
        for first_line, code in ANSWERS.items():
            cell = page.locator(f"{SHOWN} .jp-CodeCell").filter(has_text=first_line).first
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+a")
            page.keyboard.insert_text(code)

        page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(  # every code cell ran: a number in each prompt, none waiting ([*]) or empty
            """s => { const p = [...document.querySelectorAll(s + ' .jp-CodeCell .jp-InputArea-prompt')];
                      return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.innerText)); }""",
            arg=SHOWN, timeout=600_000, polling=2000)
        usage = _kernel_usage(student)
        path = Path(f"/home/{student}/{COURSE}/{REAL}/{REAL}.ipynb")
        save(page, path)

        page.locator(".lm-TabBar-tabLabel", has_text="Assignments").click()
        page.locator("#fetched_assignments_list .list_item", has_text=REAL).locator("button", has_text="Submit").click()
        page.locator("#submitted_assignments_list .list_item", has_text=REAL).first.wait_for(timeout=60_000)
        chromium.close()

    saved = nbformat.read(path, as_version=4)
    code = [c for c in saved.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert all(c.execution_count for c in code) and not errors, errors[:1]
    print(f"\nchapter 7 (quick) in {student}'s kernel on the hub: {usage}")
    _record("hub-browser-kernel.json", {"chapter": REAL, "profile": "quick", **usage})

    assert graded(hub, REAL)[student] == 3.0
