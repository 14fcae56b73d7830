"""The Chinese edition at run time: which language a learner chose, and the Chinese of what tutorlib shows.

The English notebooks are the source. Their translation lives in `tutorlib/zh/` (docs/design.md, "The Chinese
edition"): one catalogue file per chapter for the markdown cells (`tutorlib.tools.translate` builds the Chinese
notebooks from them), `claims.toml` for the verdicts' claims by registry key, and `strings.toml` for the short
texts code shows: figure titles, axes and legends, exercise hints, the claims of reported comparisons.
With ``TUTORLIB_LANG=zh`` the same code cells print and draw in Chinese; the numbers do not change, and the
records a build keeps (``$TUTORLIB_RESULTS``) stay in English, so both editions compare with one reference run.
"""
from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

LANG_VAR = "TUTORLIB_LANG"  # not LANG: that is the system's locale, and a learner's shell may say anything there
LANGUAGES = ("en", "zh")
CATALOGUE = Path(__file__).resolve().parent / "zh"
FONT = CATALOGUE / "NotoSansSC-course-subset.otf"  # Noto Sans CJK SC, cut to the characters the course needs
FONT_FAMILY = "Noto Sans SC Course Subset"
STATUS = {"PASS": "成立 PASS", "FAIL": "不成立 FAIL", "INCONCLUSIVE": "未判定 INCONCLUSIVE",
          "NOT ASSERTED": "仅报告 NOT ASSERTED", "REPORTED": "仅报告 REPORTED", "RETIRED": "已退役 RETIRED"}
MISSING_VAR = "TUTORLIB_I18N_MISSING"  # a file that collects every text shown in English in a Chinese run


def language() -> str:
    """'en' or 'zh', from $TUTORLIB_LANG (default English); anything else is a clear error."""
    value = os.environ.get(LANG_VAR, "en").strip().lower() or "en"
    value = {"zh-cn": "zh", "zh_cn": "zh", "cn": "zh", "chinese": "zh", "english": "en"}.get(value, value)
    if value not in LANGUAGES:
        raise ValueError(f"${LANG_VAR}={os.environ[LANG_VAR]!r} is not an edition of the course: use "
                         f"{LANG_VAR}=zh for Chinese or {LANG_VAR}=en (the default) for English.")
    return value


def _english(value, what: str = "text") -> str:
    if not isinstance(value, str):
        raise TypeError(f"The English {what} to translate must be a str, got {type(value).__name__} ({value!r:.60}).")
    return value


def fingerprint(english: str) -> str:
    """The 12-hex sha256 a translation records of its English: when the English changes, the entry is stale."""
    english = _english(english)
    return hashlib.sha256(english.strip().encode("utf-8")).hexdigest()[:12]


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def strings() -> dict[str, str]:
    """English -> Chinese for the short texts code shows (strings.toml)."""
    return dict(_toml(CATALOGUE / "strings.toml")["strings"])


@lru_cache(maxsize=None)
def templates() -> list[tuple[re.Pattern, str]]:
    """Texts with numbers in them ("seed {}"): each `{}` of the English matches anything, in order, in the Chinese."""
    table = _toml(CATALOGUE / "strings.toml").get("templates", {})
    return [(re.compile(re.escape(en).replace(r"\{\}", "(.+?)") + r"\Z", re.S), zh) for en, zh in table.items()]


@lru_cache(maxsize=None)
def claims() -> dict[str, dict]:
    """Registry key -> {"en": fingerprint of the registered English claim, "zh": its Chinese} (claims.toml)."""
    return dict(_toml(CATALOGUE / "claims.toml")["claims"])


def _missing(english: str) -> str:
    path = os.environ.get(MISSING_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(english.replace("\n", "\\n") + "\n")
    return english


def text(english: str) -> str:
    """`english` as the learner's edition shows it: itself, or its Chinese from strings.toml.

    A text the catalogue lacks is shown in English (never a wrong translation); $TUTORLIB_I18N_MISSING collects it.
    """
    if not _english(english).strip() or language() == "en" or not re.search(r"[A-Za-z]{2}", english):
        return english  # numbers, units and symbols read the same in both editions
    if re.search("[\u4e00-\u9fff]", english):
        return english  # already Chinese (a figure drawn twice is translated once)
    found = strings().get(english)
    if found is not None:
        return found
    for pattern, chinese in templates():
        match = pattern.match(english)
        if match:
            return chinese.format(*(_part(part) for part in match.groups()))
    return _missing(english)


def _part(english: str) -> str:
    """A piece a template captured: a registered claim, a known string, else itself (a number, a name)."""
    key = _registered().get(english)
    return claim(english, key) if key else strings().get(english, english)


@lru_cache(maxsize=None)
def _registered() -> dict[str, str]:
    """English claim -> registry key, for claims a chapter prints without naming their key."""
    from .check import preregistration

    return {entry["claim"]: key for key, entry in preregistration().items() if isinstance(entry, dict)}


def claim(english: str, key: str | None = None) -> str:
    """A verdict's claim in the learner's edition: by registry key where it has one, else as a string."""
    if not _english(english, "claim") or language() == "en":
        return english
    key = key or _registered().get(english)
    entry = claims().get(key) if key else None
    if entry is not None and entry["en"] == fingerprint(english):
        return entry["zh"]
    return text(english) if key is None else _missing(english)  # a stale entry shows the current English


def status(word: str) -> str:
    """PASS / FAIL / INCONCLUSIVE / NOT ASSERTED, with its Chinese in the Chinese edition (the English stays greppable)."""
    return STATUS.get(_english(word, "status"), word) if language() == "zh" else word


def translate_figure(fig) -> None:
    """Put a figure's titles, axis labels, legends and category ticks into the learner's edition, in a CJK font."""
    if not hasattr(fig, "axes") or not hasattr(fig, "legends"):
        raise TypeError(f"translate_figure takes a matplotlib Figure, got {type(fig).__name__}.")
    if language() == "en":
        return
    _use_font()
    texts = [fig._suptitle] if getattr(fig, "_suptitle", None) is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
        for axis in (ax.xaxis, ax.yaxis):
            _translate_ticks(axis)
    for legend in fig.legends:
        texts += [*legend.get_texts(), legend.get_title()]
    for item in texts:
        item.set_text(text(item.get_text()))
        item.set_fontfamily(["DejaVu Sans", FONT_FAMILY])


def _translate_ticks(axis) -> None:
    """Category ticks (bar names) are drawn by a formatter: fix their labels to the translated names."""
    from matplotlib import category, ticker

    if not isinstance(axis.get_major_formatter(), (category.StrCategoryFormatter, ticker.FixedFormatter)):
        return
    labels = axis.get_ticklabels()
    names = [label.get_text() for label in labels]
    if any(text(n) != n for n in names):
        axis.set_ticks(axis.get_ticklocs(), [text(n) for n in names])
    for label in axis.get_ticklabels():
        label.set_fontfamily(["DejaVu Sans", FONT_FAMILY])


@lru_cache(maxsize=None)
def _use_font() -> None:
    """Register the bundled CJK font with matplotlib once, after checking its sha256 (no system font needed)."""
    from matplotlib import font_manager

    if not FONT.is_file():
        raise FileNotFoundError(f"The Chinese edition's font {FONT} is missing: reinstall tutorlib "
                                f"(pip install --force-reinstall tutorlib) or restore it with git.")
    expected = FONT.with_suffix(".sha256").read_text().split()[0]
    if hashlib.sha256(FONT.read_bytes()).hexdigest() != expected:
        raise ValueError(f"{FONT} does not match its recorded sha256 ({expected[:12]}...): it was changed or damaged. "
                         f"Restore it with git, or rebuild it with `python -m tutorlib.tools.font` (which records it).")
    font_manager.fontManager.addfont(str(FONT))

def value(shown):
    """A number a verdict line prints, in the learner's edition: texts among them (a retired entry's reason) too."""
    if language() == "en" or not isinstance(shown, str):
        return shown
    reasons = {entry.get("retired_en"): entry.get("retired_zh") for entry in claims().values()}
    return reasons.get(fingerprint(shown)) or text(shown)


def retired(key: str | None, english: str) -> str:
    """Why a registered question was retired, in the learner's edition (claims.toml, beside the claim)."""
    if not _english(english, "reason") or language() == "en":
        return english
    entry = claims().get(key, {}) if key else {}
    if entry.get("retired_en") == fingerprint(english):
        return entry["retired_zh"]
    return _missing(english)
