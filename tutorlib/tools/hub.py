"""`course hub`: what one server needs to run this course for a class on JupyterHub, written from a roster.

    python -m tutorlib.course hub --roster class.csv --course pcnn --teacher alice --out /srv/pcnn-hub
    sudo bash /srv/pcnn-hub/setup.sh                              # accounts, exchange, course folder, release
    sudo jupyterhub -f /srv/pcnn-hub/jupyterhub_config.py         # a plain JupyterHub (TLJH: the README)

The folder holds: `jupyterhub_config.py` (the course's groups `nbgrader-<course>` and `formgrade-<course>`,
their roles, the formgrader as a hub service run by the account `grader-<course>`, the students' servers
with the course's Jupyter config), `tljh/tutorlib_<course>.py` (the same for The Littlest JupyterHub's
`jupyterhub_config.d`), `jupyter/` (nbgrader's exchange settings and the students' extensions: no
formgrader), `setup.sh` (run once, as root) and `autograde.sh` (as root: each submission's kernel runs as
`nobody` in a private folder, so it can read neither the key nor the gradebook, nor write them).

nbgrader's exchange is the one in `exchange.py` (the root stays root's, a submission its student's and the
grader's), copied into `jupyter/` so that the servers import it without tutorlib and torch.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from . import exchange as _exchange
from . import paths
from ..profile import PROFILES

NAME = re.compile(r"[a-z][a-z0-9_-]{0,30}")  # what useradd and JupyterHub both accept, lowercase
RESERVED = {"root", "nobody", "admin", "jupyter", "daemon"}
EXCHANGE = "/srv/nbgrader/exchange"
SERVICE_PORT = 9999
TLJH_SINGLEUSER = "/opt/tljh/user/bin/jupyterhub-singleuser"
EXCHANGE_MODULE = "tutorlib_exchange"  # exchange.py's name in the hub folder's jupyter/
KEEP_ROOT = _exchange.KEEP_ROOT
KERNEL_IDLE_S = 3600  # a student's kernel idle this long is shut down: each holds about 1 GB (README's sizing)


# ----------------------------------------------------------------------------- the roster
def read_roster(path: Path) -> list[str]:
    """Student usernames from a CSV with a `username` column (other columns, e.g. names and emails, are kept out)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise SystemExit(f"No roster at {path}: write a CSV whose first line is `username`, one student per line.")
    if not rows or "username" not in rows[0]:
        raise SystemExit(f"{path} has no `username` column: its first line must name the columns, e.g. "
                         f"`username,first_name,last_name`.")
    names = [(row.get("username") or "").strip() for row in rows]
    bad = [n for n in names if not NAME.fullmatch(n) or n in RESERVED or n.startswith("grader-")]
    if bad:
        raise SystemExit(f"{path}: usernames {bad[:5]} cannot be accounts: use lowercase letters, digits, - and _, "
                         f"starting with a letter, at most 31 characters, none of {sorted(RESERVED)} or grader-*.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SystemExit(f"{path}: {repeated} appear more than once; each student needs one account.")
    return names


def default_assignments() -> dict[str, Path]:
    """The seven chapters as assignments ch01 ... ch07."""
    return {f"ch{p.name[:2]}": p for p in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}


# ----------------------------------------------------------------------------- the files
def write_hub(out: Path, course: str, teacher: str, students: list[str], assignments: dict[str, Path],
              student_python: str | None = None, exchange: str = EXCHANGE, profile: str | None = None,
              threads: int = 1) -> list[Path]:
    """Write the hub folder; return the files written.

    student_python: the Python of the students' environment (the students' wheel: no solutions); default this one.
    exchange: nbgrader's exchange root (default /srv/nbgrader/exchange).
    profile: the chapters' profile on the hub (quick / standard / full; default: standard, the chapters' own).
    threads: torch threads per student kernel (default 1: the cores are shared by the class, and one thread
    gives the numbers a 2-core laptop gives).
    """
    _check_options(course, teacher, students, assignments, profile, threads)
    out = out.resolve()
    (out / "jupyter" / "labconfig").mkdir(parents=True, exist_ok=True)
    (out / "tljh").mkdir(exist_ok=True)
    (out / "assignments").mkdir(exist_ok=True)
    for name, notebook in assignments.items():
        (out / "assignments" / f"{name}.ipynb").write_bytes(Path(notebook).read_bytes())
    shared = student_python or sys.executable  # what every account's servers and nbgrader commands run
    kernel_env = {"TUTORLIB_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                  **({"TUTORLIB_PROFILE": profile} if profile else {})}
    settings = dict(course=course, teacher=teacher, grader=f"grader-{course}", students=students, exchange=exchange,
                    config_path=str(out / "jupyter"), python=shared, singleuser=_next_to(shared, "jupyterhub-singleuser"),
                    kernel_env=kernel_env)
    files = {
        out / "jupyterhub_config.py": _hub_config(settings, plain=True),
        out / "tljh" / f"tutorlib_{course}.py": _hub_config(settings, plain=False),
        out / "jupyter" / "nbgrader_config.py": _nbgrader_config(exchange, out / "jupyter"),
        out / "jupyter" / f"{EXCHANGE_MODULE}.py": Path(_exchange.__file__).read_text(encoding="utf-8"),
        out / "jupyter" / "jupyter_server_config.json": json.dumps(
            {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": False}},
             "MappingKernelManager": {"cull_idle_timeout": KERNEL_IDLE_S, "cull_interval": 300}}, indent=1),
        out / "jupyter" / "labconfig" / "page_config.json": json.dumps({"disabledExtensions": {
            "@jupyter/nbgrader:formgrader": True, "@jupyter/nbgrader:create-assignment": True}}, indent=1),
        out / "grader_nbgrader_config.py": (f"c = get_config()  # noqa\nc.CourseDirectory.root = '/home/grader-{course}/{course}'\n"
                                            f"c.CourseDirectory.course_id = {course!r}\nc.Execute.timeout = 600\n"),
        out / "setup.sh": _setup_script(out, settings, list(assignments)),
        out / "autograde.sh": _autograde_script(out, settings),
        out / "as-grader.sh": _as_grader_script(settings),
    }
    for path, text in files.items():
        path.write_text(text)
    for script in ("setup.sh", "autograde.sh", "as-grader.sh"):
        (out / script).chmod(0o755)
    return list(files)


def _check_options(course: str, teacher: str, students: list[str], assignments: dict[str, Path],
                   profile: str | None, threads: int) -> None:
    """Stop before writing anything if an option cannot work, naming the fix."""
    if not NAME.fullmatch(course):
        raise SystemExit(f"--course {course!r}: a course name is lowercase letters, digits, - and _, e.g. pcnn.")
    if not NAME.fullmatch(teacher) or teacher in students:
        raise SystemExit(f"--teacher {teacher!r} must be an account name that is not a student's.")
    keyless = [name for name, nb in assignments.items() if "### BEGIN SOLUTION" not in Path(nb).read_text(encoding="utf-8")]
    if keyless:
        raise SystemExit(f"Assignments {keyless} hold no solutions (a students' copy?): nbgrader makes the students' "
                         f"versions and the hidden tests from the answer key. Run this from your own copy of the "
                         f"chapters (a clone or the self-study wheel); --student-python names the students' environment.")
    if profile is not None and profile not in PROFILES:
        raise SystemExit(f"--profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    if not isinstance(threads, int) or threads < 1:
        raise SystemExit(f"--threads {threads!r}: a positive whole number of torch threads per student kernel, e.g. 1.")


def _next_to(python: str, command: str) -> str:
    return str(Path(python).parent / command)


def _hub_config(s: dict, plain: bool) -> str:
    """JupyterHub's config: groups and roles as nbgrader reads them, the formgrader service, the students' servers."""
    lines = [
        f"# Written by `python -m tutorlib.course hub` for the course {s['course']!r}: {len(s['students'])} students,",
        f"# teacher {s['teacher']!r}. The formgrader runs as the account {s['grader']!r}.",
        "c = get_config()  # noqa",
        f"COURSE, TEACHER, GRADER = {s['course']!r}, {s['teacher']!r}, {s['grader']!r}",
        f"STUDENTS = {s['students']!r}",
    ]
    if plain:  # TLJH keeps its own user list (tljh-config add-item users.allowed ...)
        lines += ["c.Authenticator.allowed_users = set(STUDENTS) | {TEACHER}", "c.Authenticator.admin_users = {TEACHER}"]
    lines += [
        "c.JupyterHub.load_groups = {",
        "    f'nbgrader-{COURSE}': {'users': STUDENTS + [TEACHER]},  # who may fetch and submit",
        "    f'formgrade-{COURSE}': {'users': [TEACHER]},  # who may open the formgrader",
        "}",
        "c.JupyterHub.load_roles = [",
        "    {'name': 'server', 'scopes': ['inherit']},  # the assignment list asks the hub for the user's groups",
        "    {'name': f'formgrade-{COURSE}', 'groups': [f'formgrade-{COURSE}'],",
        "     'scopes': [f'access:services!service={COURSE}']},",
        "    {'name': f'nbgrader-{COURSE}', 'groups': [f'nbgrader-{COURSE}'],",
        "     'scopes': ['list:services', f'read:services!service={COURSE}']},",
        "]",
        "c.JupyterHub.services = [{",
        f"    'name': COURSE, 'url': 'http://127.0.0.1:{SERVICE_PORT}', 'user': GRADER, 'cwd': f'/home/{{GRADER}}',",
        f"    'command': [{s['singleuser'] if plain else TLJH_SINGLEUSER!r}],",
        "    'environment': {'JUPYTERHUB_DEFAULT_URL': '/lab', 'JUPYTER_CONFIG_PATH': f'/home/{GRADER}/.jupyter-course'},",
        "}]",
        "c.Spawner.default_url = '/lab'",
        f"c.Spawner.environment = {{'JUPYTER_CONFIG_PATH': {s['config_path']!r}, **{s['kernel_env']!r}}}"
        "  # exchange, no formgrader; threads per kernel, profile",
    ]
    if plain:  # TLJH's servers run its user environment, where the students' wheel is installed
        lines.append(f"c.Spawner.cmd = [{s['singleuser']!r}]  # the students' environment: no solutions")
    return "\n".join(lines) + "\n"


def _nbgrader_config(exchange: str, folder: Path) -> str:
    """nbgrader's exchange settings; its classes come from the copy of exchange.py in `folder`."""
    return (f"import sys\n\nfrom nbgrader.auth import JupyterHubAuthPlugin\n\nc = get_config()  # noqa\n"
            f"if {str(folder)!r} not in sys.path:  # {EXCHANGE_MODULE}.py: the exchange, without torch\n"
            f"    sys.path.insert(0, {str(folder)!r})\n"
            f"c.Exchange.root = {exchange!r}\nc.Exchange.path_includes_course = True\n"
            f"c.Authenticator.plugin_class = JupyterHubAuthPlugin\n"
            + "".join(f"c.ExchangeFactory.{role} = '{EXCHANGE_MODULE}.{cls.__name__}'\n" for role, cls in KEEP_ROOT.items()))


def _setup_script(out: Path, s: dict, assignments: list[str]) -> str:
    course, grader = s["course"], s["grader"]
    home = f"/home/{grader}"
    nbgrader = f"{shlex.quote(s['python'])} -m nbgrader"
    accounts = " ".join([s["teacher"], *s["students"]])
    lines = [
        "#!/usr/bin/env bash",
        f"# Run once, as root: accounts, the exchange, the course folder of {grader}, every assignment released.",
        "# On TLJH run it with --tljh: TLJH makes the students' and teacher's accounts (jupyter-NAME) itself.",
        "set -euo pipefail",
        f"useradd --create-home --shell /bin/bash {grader} 2>/dev/null || id -u {grader} >/dev/null",
        f"[ \"${{1:-}}\" = --tljh ] || for user in {accounts}; do",
        "    id -u \"$user\" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash \"$user\"",
        "    chmod 0700 \"/home/$user\"  # a student's work is theirs alone (useradd's default is readable by all)",
        "done",
        f"install -d -m 0755 -o root -g root {s['exchange']}  # not world-writable (nbgrader#1225)",
        f"install -d -m 0755 -o {grader} -g {grader} {s['exchange']}/{course}",
        f"chmod 0700 {home}",
        f"install -d -m 0700 -o {grader} -g {grader} {home}/{course} {home}/.jupyter-course",
        f"install -m 0644 -o {grader} -g {grader} {shlex.quote(str(out / 'grader_nbgrader_config.py'))} {home}/{course}/nbgrader_config.py",
        f"cat {shlex.quote(str(out / 'jupyter' / 'nbgrader_config.py'))} {shlex.quote(str(out / 'grader_nbgrader_config.py'))}"
        f" > {home}/.jupyter-course/nbgrader_config.py  # the formgrader's: the exchange and the course folder",
        f"chown -R {grader}:{grader} {home}/.jupyter-course",
    ]
    for name in assignments:
        lines += [f"install -d -o {grader} -g {grader} {home}/{course}/source/{name}",
                  f"install -m 0644 -o {grader} -g {grader} {shlex.quote(str(out / 'assignments' / (name + '.ipynb')))} "
                  f"{home}/{course}/source/{name}/{name}.ipynb"]
    releases = " && ".join(f"{nbgrader} generate_assignment {n} --force && {nbgrader} release_assignment {n} --force"
                           for n in assignments)
    env = _account_env(s, home)
    lines.append(f"setpriv --reuid={grader} --regid={grader} --init-groups env -i {env} "
                 f"bash -c {shlex.quote(f'cd {home}/{course} && {releases}')}")
    return "\n".join(lines) + "\n"


def _account_env(s: dict, home: str) -> str:
    """The environment an account's nbgrader commands get: its home, the shared Python first on PATH, the config."""
    path = f"{Path(s['python']).parent}:/usr/local/bin:/usr/bin:/bin"
    kernel = "".join(f" {name}={shlex.quote(value)}" for name, value in s["kernel_env"].items())  # autograde's kernels
    return f"HOME={home} PATH={shlex.quote(path)} JUPYTER_CONFIG_PATH={shlex.quote(s['config_path'])} LANG=C.UTF-8{kernel}"


def _as_grader_script(s: dict) -> str:
    home = f"/home/{s['grader']}"
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# Run as root: a command as the account {s['grader']}, in the course folder, with the course's settings.",
        "# Usage: sudo bash as-grader.sh nbgrader collect ch07   (then autograde.sh, then: as-grader.sh nbgrader export)",
        "set -euo pipefail",
        f"cd {home}/{s['course']}",
        f"exec setpriv --reuid={s['grader']} --regid={s['grader']} --init-groups env -i {_account_env(s, home)} \"$@\"",
    ]) + "\n"


def _autograde_script(out: Path, s: dict) -> str:
    course, grader = s["course"], s["grader"]
    return "\n".join([
        "#!/usr/bin/env bash",
        "# Run as root after `nbgrader collect`: autograde ASSIGNMENT with every submission's kernel as nobody,",
        f"# in a private folder, then hand the results back to {grader}. Usage: sudo bash autograde.sh ch07",
        "set -euo pipefail",
        f"cd /home/{grader}/{course}",
        f"env -i {_account_env(s, '/root')} {shlex.quote(s['python'])} -m tutorlib.tools.hub autograde \"$@\"",
        f"chown -R {grader}:{grader} /home/{grader}/{course}",
    ]) + "\n"


# ----------------------------------------------------------------------------- autograde


def autograde(argv: list[str]) -> None:
    """`nbgrader autograde ...` with each submission's kernel started as `nobody` in a private folder (as root)."""
    from nbgrader.apps import NbGraderApp
    from nbgrader.preprocessors import execute

    from .grading import sandbox_user

    user = sandbox_user()
    if user is None:
        raise SystemExit("autograde.sh runs as root on Linux, where each kernel can run as nobody: run it with sudo.")
    execute.AsyncKernelManager = _private_kernel_class(user)  # nbgrader passes this class to nbclient
    NbGraderApp.launch_instance(argv=["autograde", *argv])


def _private_kernel_class(user):
    """The grader's sandboxed kernel (as `user`), in a fresh folder of its own instead of the course folder."""
    from .grading import sandboxed_kernel_class

    class PrivateKernel(sandboxed_kernel_class(user)):
        async def _async_pre_start_kernel(self, **kw):
            folder = Path(tempfile.mkdtemp(prefix="autograde-"))
            os.chown(folder, user.pw_uid, user.pw_gid)
            folder.chmod(0o700)
            self.connection_file = str(folder / "kernel.json")
            kw["cwd"] = str(folder)  # not the course folder: the key and the gradebook are out of reach
            return await super()._async_pre_start_kernel(**kw)

    return PrivateKernel


if __name__ == "__main__":
    if sys.argv[1:2] == ["autograde"]:
        autograde(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m tutorlib.tools.hub autograde ASSIGNMENT [nbgrader options] (autograde.sh runs it)")
