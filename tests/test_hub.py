"""A class on one server: JupyterHub with its real proxy, 20 students as system users, nbgrader's exchange.

`make hub-test` runs it (`.ci/run` after `make test`): root on Linux, `configurable-http-proxy` on PATH
(npm), `/usr/bin/python3` for the students' environment (the students' wheel: no solutions; cached under
/opt/tutorlib-hub-test/). Everything goes through the folder `python -m tutorlib.course hub` writes and the
scripts in it, run as the README says: setup.sh, as-grader.sh, autograde.sh.
"""
from __future__ import annotations

import hashlib
import os
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
    alembic is installed, not borrowed, because nbgrader runs its command from PATH (the borrowed bin is not there).
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
        subprocess.run([str(env / "bin" / "pip"), "install", "--quiet", *(["--no-deps", "--ignore-installed"]
                        if _readable_by_all(borrowed) else []), str(wheel), "jupyterhub", "nbgrader", "alembic"], check=True)
        (env / "ready").touch()
    shutil.rmtree(dist)
    python = str(env / "bin" / "python")
    where = Path(subprocess.run([python, "-c", "import tutorlib, nbgrader, torch; print(tutorlib.__file__)"],
                                capture_output=True, text=True, check=True, cwd="/").stdout.strip()).parent
    chapters = sorted((where / "course_notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert where.is_relative_to(env) and len(chapters) == 7, where  # the students' edition, not the clone's key
    assert not any("BEGIN SOLUTION" in p.read_text() for p in chapters)
    return python


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
    extra = f" --assignment mini={MINI} --exchange {folder / 'exchange'}"  # the mini chapter; an exchange of its own
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
        assert listed["value"][0]["status"] == "fetched"
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

    collect, autograde, export = readme_hub_commands()[3:6]  # the README's grading block, as written
    assert "collect" in collect and "autograde.sh" in autograde and "export" in export
    for command in (collect, autograde, export):
        ran = subprocess.run(as_written(command, hub.folder, hub.python), shell=True, capture_output=True, text=True)
        assert ran.returncode == 0, (command, ran.stderr[-3000:])
    import csv

    with open(home / "grades.csv") as f:
        scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
    assert scores == {s: float(v) for s, v in expected.items()}, scores

    attacked = nbformat.read(home / "autograded" / "hubs06" / "mini" / "mini.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in attacked.cells for o in c.get("outputs", []))
    assert printed.count("refused: PermissionError") == 2 and "REACHED" not in printed, printed
    assert key.read_bytes() == key_before


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
