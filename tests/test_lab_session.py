"""A learner's session in JupyterLab, driven in a real browser (Chromium through Playwright).

What a unit test cannot see: an explorer that still redraws after the page is reloaded (its controls and
figure are widgets whose state the kernel holds), the "none" a dropdown shows for None, and a chapter that
leaves `git diff` empty after it was run and saved behind `make lab`'s output filter. The server is started
by `tutorlib.course.lab_command`, the command `make lab` runs, on a temporary git clone of the chapters.

Needs `chromium` (apt-get install chromium) and `playwright` (in the test extras). Without them the tests
skip, except where TUTORLIB_BROWSER_TESTS=required (CI sets it), where they fail.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tutorlib.tools import lab as lab_tool

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "course-test"
# JupyterLab settings for a test: every cell in the page (no windowing), no news pop-up over the notebook
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}

SHOWN = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen (a restored tab would be hidden)

pytestmark = pytest.mark.slow


def browser():
    """Playwright's sync API, or a skip (a failure where TUTORLIB_BROWSER_TESTS=required) naming what to install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if CHROMIUM and sync_playwright:
        return sync_playwright
    message = "needs Chromium and Playwright: apt-get install chromium; pip install playwright"
    if os.environ.get("TUTORLIB_BROWSER_TESTS") == "required":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", "user.name=course", "-c", "user.email=course@example.org", *args],
                          cwd=repo, capture_output=True, text=True)


def serve(folder: Path, settings: Path, tmp: Path, **env_vars: str) -> tuple[subprocess.Popen, str]:
    """JupyterLab on `folder` as `make lab` starts it, with the test's settings added to `settings`; (server, url)."""
    for name, values in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TUTORLIB_HEADLESS"}
    env.update(TUTORLIB_PROFILE="quick", JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), **env_vars)  # no tabs restored from a session
    server = subprocess.Popen(lab_tool.lab_command(folder, "--no-browser", f"--port={port}", f"--ServerApp.token={TOKEN}"),
                              env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "lab.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    pytest.fail(f"JupyterLab did not start: {(tmp / 'lab.log').read_text()[-2000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab, as `make lab` starts it, on a fresh git repository holding the chapters."""
    browser()
    tmp = tmp_path_factory.mktemp("lab")
    repo, settings = tmp / "course", tmp / "settings"
    (repo / "notebooks").mkdir(parents=True)
    for path in CHAPTERS:
        shutil.copy(path, repo / "notebooks" / path.name)
    assert git(repo, "init", "-q").returncode == 0 and git(repo, "add", "notebooks").returncode == 0
    assert git(repo, "commit", "-qm", "the chapters").returncode == 0
    assert lab_tool.strip_outputs_in_git(repo / "notebooks")  # what `make lab` does before it starts JupyterLab
    server, url = serve(repo / "notebooks", settings, tmp)
    with browser()() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield {"url": url, "repo": repo, "chromium": chromium, "log": tmp / "lab.log"}
        chromium.close()
    server.terminate()
    server.wait(timeout=30)


def open_notebook(lab, name: str):
    page = lab["chromium"].new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab['url']}/lab/tree/{name}?token={TOKEN}&reset")  # reset: only this notebook open
    page.wait_for_selector(f"{SHOWN} .jp-CodeCell", timeout=60_000)
    wait_idle(page)
    return page


def wait_idle(page, timeout_ms: int = 300_000) -> None:
    page.wait_for_timeout(500)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)


def run_cell(page, text: str) -> None:
    """Click into the first code cell containing `text` and run it with Shift+Enter, as a learner does.

    A key pressed while the kernel still connects can be lost: press again until the prompt shows [*] or [n].
    """
    cell = page.locator(f"{SHOWN} .jp-CodeCell").filter(has_text=text).first
    prompt = cell.locator(".jp-InputArea-prompt")
    for _ in range(5):
        accept_dialog(page)
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        for _ in range(20):
            if re.search(r"\[(\*|\d+)\]", prompt.inner_text()):
                wait_idle(page)
                return
            page.wait_for_timeout(500)
    raise AssertionError(f"the cell with {text!r} never ran")


def accept_dialog(page) -> None:
    """A dialog JupyterLab raised on a loaded machine (CI once saw one block every click): answer it as a learner
    would, with its default button, and say what it asked."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        print(f"JupyterLab asked: {dialog.first.inner_text()!r}; answered with its default button")
        dialog.first.locator(".jp-Dialog-button.jp-mod-accept").first.click()


def save(page, path: Path) -> None:
    before = path.stat().st_mtime_ns
    page.locator(f"{SHOWN} .jp-NotebookPanel-toolbar [data-command='docmanager:save']").first.click()
    for _ in range(60):
        if path.stat().st_mtime_ns != before:
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"JupyterLab did not save {path.name}")


def shut_down_kernels(lab) -> None:
    """End the sessions a test opened (each chapter's kernel holds torch: half a GiB)."""
    sessions = json.load(urllib.request.urlopen(f"{lab['url']}/api/sessions?token={TOKEN}"))
    for session in sessions:
        request = urllib.request.Request(f"{lab['url']}/api/sessions/{session['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request)


def menus(page) -> list[str]:
    """What each explorer dropdown shows (its selected option's text)."""
    return page.locator(".widget-dropdown select").evaluate_all(
        "els => els.map(e => e.selectedIndex < 0 ? '' : e.options[e.selectedIndex].text)")


def run_explorer(page, control: str, option: str) -> str:
    """Pick `option` for `control`, press Run, and wait until the figure's image changes; return the status line."""
    before = page.locator(".widget-image").first.get_attribute("src")
    page.locator(".widget-dropdown").filter(has_text=control).locator("select").select_option(label=option)
    page.locator(".widget-button").filter(has_text="Run").click()
    page.wait_for_function("s => document.querySelector('.widget-image').src !== s", arg=before, timeout=120_000)
    page.wait_for_function("() => !document.querySelector('.widget-button').disabled", timeout=120_000)
    assert page.locator(".widget-image").first.evaluate("img => img.complete && img.naturalWidth > 0")
    return page.locator(".widget-label").last.inner_text()


def test_the_explorer_redraws_before_and_after_a_reload_and_git_stays_clean(lab):
    path = lab["repo"] / "notebooks" / "03_gradients.ipynb"
    page = open_notebook(lab, path.name)
    run_cell(page, "runtime.setup()")  # the chapter's setup: imports, data, the quick profile
    run_cell(page, "plots.explorer(explore")
    page.wait_for_selector(".widget-image", timeout=60_000)
    assert menus(page) == ["30", "xavier", "0.02", "none", "False"]  # clip=None shows as "none", not blank
    assert run_explorer(page, "depth", "10") == "depth=10, init=xavier, lr=0.02, clip=none, batchnorm=False"
    save(page, path)

    page.reload()  # the learner reopens the notebook: the widgets come back from the kernel
    page.wait_for_selector(".widget-image", timeout=60_000)
    assert menus(page) == ["10", "xavier", "0.02", "none", "False"]  # the controls agree with the figure
    assert run_explorer(page, "init", "he") == "depth=10, init=he, lr=0.02, clip=none, batchnorm=False"
    save(page, path)
    page.close()
    shut_down_kernels(lab)

    saved = json.loads(path.read_text())
    assert any(cell.get("outputs") for cell in saved["cells"])  # what was saved is a run notebook
    diff = git(lab["repo"], "diff", "--exit-code", "--stat")
    assert diff.returncode == 0, f"git sees a change after a saved run:\n{diff.stdout}"
    assert git(lab["repo"], "diff", "--cached", "--exit-code").returncode == 0


# Two chapters besides the explorer's: what keeps git clean is the repository's filter, the same for every
# chapter, and each browser round costs 15-25 s of the test budget.
@pytest.mark.parametrize("name", ["01_source_data.ipynb", "07_choosing_a_model.ipynb"])
def test_a_chapter_run_and_saved_leaves_git_diff_empty(lab, name):
    """A chapter's first cell run (an execution count, outputs) and saved, as JupyterLab writes it."""
    path = lab["repo"] / "notebooks" / name
    page = open_notebook(lab, name)
    run_cell(page, "runtime.setup()")  # in every chapter's first code cell
    save(page, path)
    page.close()
    shut_down_kernels(lab)
    assert '"execution_count": 1' in path.read_text()  # the run is in the file on disk ...
    diff = git(lab["repo"], "diff", "--exit-code", "--stat", "--", f"notebooks/{name}")
    assert diff.returncode == 0, f"git sees a change in {name} after a saved run:\n{diff.stdout}"  # ... not in git
