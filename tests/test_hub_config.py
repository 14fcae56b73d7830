"""`python -m tutorlib.course hub`: the files a class's JupyterHub loads, read as JupyterHub and TLJH read them.

The hub itself, with twenty real users, is tests/test_hub.py (make hub-test); TLJH's installer needs systemd and
the network, so for it this checks the config file its `jupyterhub_config.d` loads.
"""
from __future__ import annotations

import subprocess
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
    assert c.ExchangeFactory.submit == "tutorlib.tools.hub.KeepRootExchangeSubmit"
    assert set(c.ExchangeFactory) == set(hub.KEEP_ROOT)
    assert '"nbgrader.server_extensions.formgrader": false' in (folder / "jupyter" / "jupyter_server_config.json").read_text()
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
