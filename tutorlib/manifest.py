"""data/manifest.json: what the course bundles (data files, checkpoints), each with its sha256.

In a clone the files live in data/; an installed wheel carries the same files as tutorlib/course_data.

The one module that reads or writes the manifest. `data` and `models` check files against it before
they load anything; the maintainer tools (`tutorlib.tools`) record what they build in it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def _data_dir() -> Path:
    """data/ of a clone, or its copy inside an installed wheel (tutorlib/course_data, see pyproject.toml)."""
    package = Path(__file__).resolve().parent
    installed = package / "course_data"
    return installed if (installed / "manifest.json").exists() else package.parent / "data"


DATA_DIR = _data_dir()
PATH = DATA_DIR / "manifest.json"


def sha256(path: str | Path) -> str:
    """The sha256 of a file, to check bundled data and checkpoints against the manifest."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read() -> dict:
    """The whole manifest ({} when there is none yet)."""
    if not PATH.exists():
        return {}
    text = PATH.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        conflict = " It holds git merge-conflict markers (<<<<<<<): resolve them," if "<<<<<<<" in text else ""
        raise ValueError(f"{PATH} is not valid JSON ({err}).{conflict} Restore it with "
                         f"`git checkout -- data/manifest.json` (or reinstall the course's wheel).") from None


def section(name: str) -> dict:
    """One section of the manifest, e.g. "checkpoints" or "fashion_mnist_small" ({} when absent)."""
    return read().get(name, {})


def record(section_name: str, entry: dict, key: str | None = None) -> None:
    """Write `entry` as a whole section, or as `key` inside it, keeping everything else."""
    manifest = read()
    if key is None:
        manifest[section_name] = entry
    else:
        manifest.setdefault(section_name, {})[key] = entry
    PATH.write_text(json.dumps(manifest, indent=2) + "\n")
