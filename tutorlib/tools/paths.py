"""Where the course is: a clone (notebooks/, build/) or an installed wheel (its packaged chapters, ./build)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGED_NOTEBOOKS = Path(__file__).resolve().parents[1] / "course_notebooks"  # inside an installed wheel
IN_CLONE = (ROOT / "pyproject.toml").exists() and (ROOT / "notebooks").is_dir()
NOTEBOOKS = ROOT / "notebooks" if IN_CLONE else PACKAGED_NOTEBOOKS
BUILD = ROOT / "build" if IN_CLONE else Path("build")  # installed: build/ in the current folder
REFERENCE_RUN = NOTEBOOKS / "reference_run.json"  # the standard run on the default seeds, committed
BIBLIOGRAPHY = NOTEBOOKS / "references.bib"
CONFIRM_SEEDS = "20,21,22"
