"""`python -m tutorlib.course hub`: the files a class's JupyterHub loads, read as JupyterHub and TLJH read them.

The hub itself, with twenty real users, is tests/test_hub.py (make hub-test); TLJH's installer needs systemd and
the network, so for it this checks the config file its `jupyterhub_config.d` loads.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from tutorlib.tools import hub

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "tests" / "fixtures" / "mini_chapter.ipynb"


def written(tmp_path: Path) -> Path:
    hub.write_hub(tmp_path / "hub", "pcnn", "alice", ["s01", "s02"], {"mini": MINI}, "/opt/pcnn/bin/python",
                  exchange="/srv/nbgrader/exchange")
    return tmp_path / "hub"


def load(path: Path):
    return PyFileConfigLoader(path.name, str(path.parent)).load_config()


def test_the_hub_config_gives_nbgrader_its_groups_roles_service_and_the_students_environment(tmp_path):
    c = load(written(tmp_path) / "jupyterhub_config.py")
    assert c.JupyterHub.load_groups == {"nbgrader-pcnn": {"users": ["s01", "s02", "alice"]},
                                        "formgrade-pcnn": {"users": ["alice"]}}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["formgrade-pcnn"]["scopes"] == ["access:services!service=pcnn"]
    assert "read:services!service=pcnn" in roles["nbgrader-pcnn"]["scopes"]
    service = c.JupyterHub.services[0]
    assert (service["name"], service["user"], service["command"]) == ("pcnn", "grader-pcnn", ["/opt/pcnn/bin/jupyterhub-singleuser"])
    assert c.Spawner.cmd == ["/opt/pcnn/bin/jupyterhub-singleuser"] and c.Authenticator.admin_users == {"alice"}
    assert c.Authenticator.allowed_users == {"s01", "s02", "alice"}


def test_the_tljh_file_leaves_users_and_environment_to_tljh(tmp_path):
    c = load(written(tmp_path) / "tljh" / "tutorlib_pcnn.py")
    assert "allowed_users" not in c.Authenticator and "cmd" not in c.Spawner
    assert c.JupyterHub.services[0]["command"] == [hub.TLJH_SINGLEUSER]
    assert c.JupyterHub.load_groups["nbgrader-pcnn"]["users"] == ["s01", "s02", "alice"]


def test_nbgrader_gets_the_exchange_that_keeps_its_root_and_students_no_formgrader(tmp_path):
    folder = written(tmp_path)
    c = load(folder / "jupyter" / "nbgrader_config.py")
    assert c.Exchange.root == "/srv/nbgrader/exchange" and c.Exchange.path_includes_course
    assert c.ExchangeFactory.submit == "tutorlib_exchange.KeepRootExchangeSubmit"
    assert set(c.ExchangeFactory) == set(hub.KEEP_ROOT)
    server = json.loads((folder / "jupyter" / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == {"nbgrader.server_extensions.formgrader": False}
    assert server["MappingKernelManager"]["cull_idle_timeout"] == hub.KERNEL_IDLE_S  # idle kernels give back memory
    for script in ("setup.sh", "autograde.sh", "as-grader.sh"):
        assert subprocess.run(["bash", "-n", str(folder / script)]).returncode == 0, script
    assert "install -d -m 0755 -o root -g root /srv/nbgrader/exchange" in (folder / "setup.sh").read_text()


@pytest.mark.parametrize("roster, message", [
    ("name\ns01\n", "no `username` column"),
    ("username\nS01\n", "cannot be accounts"),
    ("username\nroot\n", "cannot be accounts"),
    ("username\ngrader-x\n", "cannot be accounts"),
    ("username\ns01\ns01\n", "appear more than once"),
])
def test_a_roster_that_cannot_be_accounts_is_refused_by_name(tmp_path, roster, message):
    (tmp_path / "class.csv").write_text(roster)
    with pytest.raises(SystemExit, match=message):
        hub.read_roster(tmp_path / "class.csv")


def test_a_students_copy_is_not_an_answer_key(tmp_path):
    from tutorlib.tools import student

    import nbformat

    copy = tmp_path / "mini.ipynb"
    nbformat.write(student.student_version(nbformat.read(MINI, as_version=4)), copy)
    with pytest.raises(SystemExit, match="hold no solutions"):
        hub.write_hub(tmp_path / "hub", "pcnn", "alice", ["s01"], {"mini": copy})
    with pytest.raises(SystemExit, match="not a student's"):
        hub.write_hub(tmp_path / "hub", "pcnn", "s01", ["s01"], {"mini": MINI})


def test_every_server_imports_the_exchange_without_torch(tmp_path):
    """What each student's server loads: the exchange's classes by the config's names, and neither tutorlib nor torch."""
    folder = written(tmp_path)
    code = (f"from traitlets.config.loader import PyFileConfigLoader\n"
            f"import importlib, sys\n"
            f"c = PyFileConfigLoader('nbgrader_config.py', {str(folder / 'jupyter')!r}).load_config()\n"
            f"for name in c.ExchangeFactory.values():\n"
            f"    module, cls = name.rsplit('.', 1)\n"
            f"    getattr(importlib.import_module(module), cls)\n"
            f"print(sorted(m for m in ('torch', 'tutorlib', 'matplotlib') if m in sys.modules))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "[]"


def test_the_class_profile_and_threads_reach_every_kernel_and_autograde(tmp_path):
    hub.write_hub(tmp_path / "hub", "pcnn", "alice", ["s01"], {"mini": MINI}, "/opt/pcnn/bin/python", profile="quick")
    c = load(tmp_path / "hub" / "jupyterhub_config.py")
    assert c.Spawner.environment["TUTORLIB_PROFILE"] == "quick"
    assert c.Spawner.environment["TUTORLIB_THREADS"] == c.Spawner.environment["OMP_NUM_THREADS"] == "1"
    assert "TUTORLIB_PROFILE=quick" in (tmp_path / "hub" / "autograde.sh").read_text()
    assert "TUTORLIB_PROFILE" not in load(written(tmp_path / "default") / "jupyterhub_config.py").Spawner.environment


@pytest.mark.parametrize("bad, message", [({"profile": "fast"}, "--profile 'fast'"), ({"threads": 0}, "--threads 0")])
def test_a_wrong_profile_or_thread_count_is_refused_with_the_choices(tmp_path, bad, message):
    with pytest.raises(SystemExit, match=message):
        hub.write_hub(tmp_path / "hub", "pcnn", "alice", ["s01"], {"mini": MINI}, **bad)
