"""`course lab` and `get`: the chapters in JupyterLab, or copied into a folder of the learner's own."""
from __future__ import annotations

import os
from pathlib import Path

from ..i18n import LANG_VAR, language
from . import paths
from .student import write_student_versions

def strip_outputs_in_git(folder: Path) -> bool:
    """Install nbstripout's git filter where `folder` is in a git clone, so a saved run leaves `git diff` empty."""
    import subprocess
    import sys

    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True)
    if top.returncode != 0:
        return False  # not a clone (the wheel's `get` folder): nothing to keep clean
    root = Path(top.stdout.strip())
    subprocess.run([sys.executable, "-m", "nbstripout", "--install", "--attributes", ".gitattributes"], cwd=root, check=True)
    subprocess.run(["git", "config", "filter.nbstripout.extrakeys", "metadata.language_info"], cwd=root, check=True)
    return True


def lab_command(folder: Path, *options: str) -> list[str]:
    """JupyterLab on `folder`, its kernels on encrypted transport where libzmq can (no TCP warning per kernel)."""
    import sys

    import zmq

    command = [sys.executable, "-m", "jupyterlab", str(folder), *options]
    if zmq.has("curve"):
        command.append("--KernelManager.transport_encryption=auto")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # a container's root user; Jupyter refuses it otherwise
    return command


def lab(folder: Path, student: bool = False, force: bool = False) -> int:
    """Open the chapters (or, with `student`, the students' copies, written first if missing) in JupyterLab."""
    import subprocess

    if student:
        write_student_versions(folder, force=force)
    elif folder.resolve() != paths.NOTEBOOKS.resolve():
        get(folder, force=force)  # installed from the wheel, or the Chinese edition: a folder of the learner's own
    strip_outputs_in_git(folder)
    env = dict(os.environ)
    if language() == "zh":  # kernels print and draw in Chinese; JupyterLab's menus are Chinese too
        env[LANG_VAR], env["JUPYTERLAB_SETTINGS_DIR"] = "zh", str(chinese_lab_settings())
    return subprocess.call(lab_command(folder), env=env)


def chinese_lab_settings() -> Path:
    """A JupyterLab settings folder that selects the zh_CN language pack (the learner's English settings stay apart)."""
    from jupyter_core.paths import jupyter_config_dir

    folder = Path(jupyter_config_dir()) / "lab" / "user-settings-zh"
    plugin = folder / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
    if not plugin.exists():  # a learner's own choice there is kept
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.write_text('{\n    "locale": "zh_CN"\n}\n', encoding="utf-8")
    return folder


def get(out_dir: Path, force: bool = False) -> list[Path]:
    """Copy the seven chapters into a folder of the learner's own (`jupyter lab DIR` opens them there).

    A chapter already in `out_dir` with other content is the learner's work: it is kept unless `force`.
    With TUTORLIB_LANG=zh (`get --lang zh`) the chapters are the Chinese edition.
    """
    from .translate import chapter_bytes, chapters

    if out_dir.exists() and not out_dir.is_dir():
        raise SystemExit(f"{out_dir} is a file, not a folder: name a new or existing folder, e.g. `get my-course`.")
    copied = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in chapters():
            target, content = out_dir / path.name, chapter_bytes(path)
            if target.exists() and target.read_bytes() != content and not force:
                print(f"kept {target}: it differs from the course's copy (your work?); --force replaces it")
                continue
            target.write_bytes(content)
            copied.append(target)
    except OSError as err:  # no permission, a read-only disk, a full one
        raise SystemExit(f"Cannot write the chapters into {out_dir}: {err.strerror} ({err.filename}). Pick a "
                         f"folder you can write to, e.g. one in your home folder.") from None
    how = f"python -m tutorlib.course lab --lang zh {out_dir}" if language() == "zh" else f"jupyter lab {out_dir}"
    print(f"{len(copied)} chapters in {out_dir}. Open them with:  {how}")
    return copied
