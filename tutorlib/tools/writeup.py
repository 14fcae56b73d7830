"""The write-up a reader can cite and re-check: findings beside their evidence, one reference list, the
environment with the command that reproduces it, and a comparison with the committed reference run.

`python -m tutorlib.course build` calls `write_index` once every chapter has run. The page shows, per
chapter: the article's claim, the chapter's key figure (the cell tagged ``key-figure``), each asserted
verdict with its rule, estimate and interval, the findings only reported (apart, so nobody reads them as
confirmed), and a link to the executed chapter. Papers are cited by key, ``[@kornblith2019better]``
(the Pandoc and MyST syntax), from notebooks/references.bib.

The reference run (notebooks/reference_run.json, written by ``build --save-reference``) is the standard
profile on the default seeds. Every build on the same profile and seeds compares each verdict with it:
"agrees", or what changed (the status flipped, or the effect left the reference's interval).
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import math
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from ..i18n import language, status as _status, text as _t

CITATION = re.compile(r"\s?\[@([A-Za-z0-9_:-]+)\]")
KEY_FIGURE = "key-figure"


# ----------------------------------------------------------------------------- references
ACCENTS = {"\\'a": "á", "\\'e": "é", '\\"e': "ë", '\\"a': "ä", '\\"o': "ö", '\\"u': "ü"}


def _plain_tex(value: str) -> str:
    """A BibTeX value as text: braces dropped, the few accents the file uses turned into letters."""
    value = re.sub(r"[{}]", "", value).strip()
    for tex, letter in ACCENTS.items():
        value = value.replace(tex, letter)
    return value


def read_bibliography(path: Path) -> dict[str, dict[str, str]]:
    """The entries of a BibTeX file as {key: {field: value}} (braces stripped); enough for references.bib."""
    entries = {}
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", path.read_text(encoding="utf-8"), re.S):
        kind, key, body = match.groups()
        fields = {name.lower(): _plain_tex(value)
                  for name, value in re.findall(r"(\w+)\s*=\s*\{(.*?)\}\s*,?\s*$", body, re.M)}
        entries[key] = {"type": kind.lower(), **fields}
    return entries


def cited_keys(text: str) -> list[str]:
    """Every key cited as [@key] in `text`, in order of first appearance."""
    return list(dict.fromkeys(CITATION.findall(text or "")))


def authors(entry: dict) -> str:
    """"Jason Yosinski, Jeff Clune and Yoshua Bengio" from BibTeX's "Yosinski, Jason and Clune, Jeff and ..."."""
    names = [" ".join(reversed([p.strip() for p in a.split(",", 1)])) for a in entry.get("author", "").split(" and ")]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def link(entry: dict) -> str:
    """Where a reader finds the paper: its arXiv page, else its DOI, else its url."""
    if entry.get("eprint"):
        return f"https://arxiv.org/abs/{entry['eprint']}"
    if entry.get("doi"):
        return f"https://doi.org/{entry['doi']}"
    return entry.get("url", "")


def cite_html(text: str, numbers: dict[str, int]) -> str:
    """`text` as HTML with each [@key] turned into a numbered link into the reference list."""
    def anchor(match: re.Match) -> str:
        key = match.group(1)
        return f" <a href='#ref-{key}'>[{numbers[key]}]</a>" if key in numbers else f" [{html.escape(key)}?]"
    return CITATION.sub(anchor, html.escape(text or ""))


def reference_list(numbers: dict[str, int], bibliography: dict[str, dict]) -> str:
    items = []
    for key, n in sorted(numbers.items(), key=lambda kv: kv[1]):
        e = bibliography[key]
        venue = e.get("booktitle") or e.get("journal") or e.get("howpublished", "")
        url = link(e)
        items.append(f"<li id='ref-{key}' value='{n}'>{html.escape(authors(e))} ({e.get('year', '')}). "
                     f"<i>{html.escape(e.get('title', ''))}</i>. {html.escape(venue)}. "
                     f"<a href='{html.escape(url)}'>{html.escape(url)}</a> <code>[@{key}]</code></li>")
    return "<ol>" + "\n".join(items) + "</ol>"


# ----------------------------------------------------------------------------- environment
def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's name (Linux: /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(root: Path | None, profile: str, seeds: list[int], seconds: float,
                only: list[str] | None = None) -> dict:
    """What a reader needs to re-run this build: commit, versions, CPU, threads, profile, seeds and the command;
    and a fingerprint of each registered verdict, so a later run can tell whether the registry changed."""
    from .. import check, threads

    commit = _git(root, "rev-parse", "HEAD") if root else None
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    pinned = threads.pinned()
    env = {
        "commit": commit or "not a git clone (an installed wheel)",
        "tree": "n/a" if not commit else "clean" if status == "" else "modified (uncommitted changes)",
        "tutorlib": _version("tutorlib"), "torch": torch.__version__, "timm": _version("timm"),
        "numpy": _version("numpy"), "python": platform.python_version(), "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "thread_policy": f"pinned by $TUTORLIB_THREADS / $OMP_NUM_THREADS to {pinned}" if pinned else
                         "tutorlib's default: one thread per core but one, fixed when tutorlib is imported",
        "profile": profile, "seeds": list(seeds), "chapters": only or "all",
        "date": datetime.datetime.now().isoformat(timespec="minutes"), "seconds": round(seconds, 1),
        "registry": check.registry_fingerprint(),
    }
    env["command"] = reproduce_command(env)
    return env


def reproduce_command(env: dict) -> str:
    """The shell line that re-runs this build with the same code, thread count, profile and seeds."""
    build = (f"TUTORLIB_THREADS={env['threads']} TUTORLIB_SEEDS={','.join(map(str, env['seeds']))} "
             f"python -m tutorlib.course build --profile {env['profile']}")
    if env["chapters"] != "all":
        build += " --only " + " ".join(env["chapters"])
    if env["commit"].startswith("not a git"):
        return f"pip install tutorlib=={env['tutorlib']} && {build}"
    return f"git checkout {env['commit'][:12]} && pip install -e . && {build}"


# ----------------------------------------------------------------------------- verdicts
def split_rule(claim: str) -> tuple[str, str]:
    """("claim", "rule") from a recorded claim such as "X beats Y [effect > 0.02, 95% interval over 9 ...]".

    The rule is the last bracketed group, which may hold brackets of its own (a retired verdict's interval).
    """
    depth = 0
    for i in range(len(claim) - 1, -1, -1) if claim.endswith("]") else ():
        depth += {"]": 1, "[": -1}.get(claim[i], 0)
        if depth == 0:
            return claim[:i].rstrip(), claim[i + 1:-1]
    return claim, ""


def measured(verdict: dict) -> tuple[float | None, list | None]:
    """A verdict's headline number and its interval (None where the verdict has none)."""
    n = verdict.get("numbers", {})
    for name in ("effect", "difference", "mean", "kendall_tau", "smallest_gap"):  # "mean": check.estimate's
        if isinstance(n.get(name), (int, float)):
            interval = n.get("interval")
            finite = isinstance(interval, list) and len(interval) == 2 and all(
                isinstance(x, (int, float)) and math.isfinite(x) for x in interval)  # quick: too few units, NaN
            return n[name], interval if finite else None
    return None, None


def verdict_id(chapter: str, verdict: dict) -> str:
    """A verdict's name across runs: its chapter and its claim (the rule included, so a changed rule is new)."""
    return f"{chapter[:2]} {verdict['claim']}"


def compare(chapters: list[dict], reference: dict | None, profile: str, seeds: list[int],
            registry: dict[str, str] | None = None) -> dict:
    """Each verdict of this run against the reference run: "agrees", or what changed. Also the counts, and the
    registered verdicts whose entry differs from the one the reference run decided (`registry`: this run's)."""
    if not reference:
        return {"comparable": False, "why": "no reference run is committed (build --save-reference writes one)"}
    if reference["environment"]["profile"] != profile or reference["environment"]["seeds"] != list(seeds):
        return {"comparable": False,
                "why": f"the reference run is the {reference['environment']['profile']} profile on seeds "
                       f"{reference['environment']['seeds']}; this run is {profile} on {list(seeds)}"}
    ref = {v["id"]: v for v in reference["verdicts"]}
    outcome, built = {}, {ch["name"][:2] for ch in chapters}
    for ch in chapters:
        for v in ch["verdicts"]:
            vid = verdict_id(ch["name"], v)
            outcome[vid] = _difference(v, ref.get(vid))
    missing = [vid for vid in ref if vid[:2] in built and vid not in outcome]
    agree = sum(o == "agrees" for o in outcome.values())
    return {"comparable": True, "commit": reference["environment"]["commit"], "date": reference["environment"]["date"],
            "outcome": outcome, "agree": agree, "compared": len(outcome), "missing": missing,
            "registry_changed": registry_changes(reference["environment"].get("registry"), registry)}


def registry_changes(before: dict | None, now: dict | None) -> list[str]:
    """Registered verdicts whose entry (threshold, kind, units, claim...) differs from the reference run's."""
    if not before or not now:
        return []
    return sorted(key for key in before if key in now and now[key] != before[key]) + \
        sorted(f"{key} (removed)" for key in before if key not in now)


def _difference(now: dict, ref: dict | None) -> str:
    if ref is None:
        return "new: not in the reference run"
    if now["status"] != ref["status"]:
        return f"status changed: {ref['status']} in the reference, {now['status']} now"
    estimate, _ = measured(now)
    if ref.get("interval") and estimate is not None and not ref["interval"][0] <= estimate <= ref["interval"][1]:
        return f"estimate {estimate} left the reference's interval {ref['interval']}"
    return "agrees"


def reference_from(chapters: list[dict], env: dict) -> dict:
    """What the reference run file keeps: the environment, and per verdict its status, estimate and interval."""
    rows = []
    for ch in chapters:
        for v in ch["verdicts"]:
            estimate, interval = measured(v)
            rows.append({"id": verdict_id(ch["name"], v), "status": v["status"], "estimate": estimate,
                         "interval": interval})
    return {"environment": env, "verdicts": rows}


# ----------------------------------------------------------------------------- chapters
def chapter_claim(nb) -> tuple[str, str]:
    """The chapter's title (its first heading) and the article's claim (the paragraph after it)."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = next((line.lstrip("# ").strip() for line in first.splitlines() if line.startswith("#")), "")
    paragraphs = [p.strip() for p in first.split("\n\n") if p.strip() and not p.startswith("#")]
    return title, (paragraphs[0] if paragraphs else "")


def key_figure(nb) -> bytes | None:
    """The PNG the chapter's cell tagged `key-figure` drew (its first image), or None."""
    for cell in nb.cells:
        if KEY_FIGURE in cell.metadata.get("tags", []):
            for out in cell.get("outputs", []):
                png = out.get("data", {}).get("image/png")
                if png:
                    return base64.b64decode(png)
    return None


CHAPTER_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}{{ resources.font_face }}{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}
<nav style="padding:8px 16px;background:#f6f8fa;border-bottom:1px solid #ddd;font-family:sans-serif">
<a href="index.html">&larr; {{ resources.home }}</a> &middot; {{ resources.edition }}</nav>
{%- endblock body_header -%}
"""


def render_chapter(nb, out: Path, title: str, edition: str) -> None:
    """One chapter as an offline HTML page (no script from a CDN) titled after it, linking back to the index."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file="writeup_chapter.html.j2",
                            extra_loaders=[jinja2.DictLoader({"writeup_chapter.html.j2": CHAPTER_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}, "edition": _t(edition),
                                                         "home": _t("Pretrained CNNs, tested: the write-up"),
                                                         "font_face": font_face(out.parent)})
    body = re.sub(r"\[@([A-Za-z0-9_:-]+)\]", r"<a href='index.html#ref-\1'>[@\1]</a>", body)  # into the list
    out.write_text(body, encoding="utf-8")


# ----------------------------------------------------------------------------- the page
STYLE = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;line-height:1.45}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:4px 6px;
text-align:left;vertical-align:top}code{font-size:85%}.pass{color:#1a7f37}.fail{color:#cf222e}
.reported,.retired{color:#9a6700}.inconclusive{color:#57606a}blockquote{margin:0;padding:.2em 1em;
border-left:4px solid #ddd;color:#333}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption,.small{font-size:85%;color:#555}pre{background:#f6f8fa;padding:8px;white-space:pre-wrap}"""

ASSERTED = ("PASS", "FAIL", "INCONCLUSIVE")


def font_face(folder: Path) -> str:
    """The Chinese pages' font, copied beside them: they read the same on a machine without a CJK font."""
    if language() == "en":
        return ""
    from ..i18n import FONT, FONT_FAMILY

    if not (folder / FONT.name).exists():
        (folder / FONT.name).write_bytes(FONT.read_bytes())
    return (f"<style>@font-face{{font-family:'{FONT_FAMILY}';src:url('{FONT.name}') format('opentype')}}"
            f"body,.jp-RenderedHTMLCommon,.jp-OutputArea-output{{font-family:sans-serif,'{FONT_FAMILY}'}}</style>")


def model_of(verdict: dict) -> str:
    """Which network a verdict is about: the ImageNet model when its claim names Lite0, else the course CNNs."""
    return "ImageNet Lite0" if "Lite0" in verdict["claim"] else _t("course CNNs")


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else html.escape(str(value))


def _measured_html(verdict: dict) -> str:
    estimate, interval = measured(verdict)
    if estimate is None:
        return "<code>" + html.escape(", ".join(f"{k}={v}" for k, v in verdict.get("numbers", {}).items())) + "</code>"
    units = verdict["numbers"].get("units")
    text = _number(estimate) + (f" [{_number(interval[0])}, {_number(interval[1])}]" if interval else "")
    return text + (f"<br><span class='small'>{_t('{units} units').format(units=units)}</span>" if units else "")


def retired(verdict: dict) -> bool:
    """A registered verdict that failed its confirming run: its rule says "retired" (re-measured or only printed)."""
    return re.search(r"\bretired\b", split_rule(verdict["claim"])[1]) is not None


def verdict_rows(chapter: str, verdicts: list[dict], numbers: dict[str, int], comparison: dict) -> str:
    """Table rows: status, model, claim (papers cited), rule, estimate [interval], and the reference check."""
    rows = []
    for v in verdicts:
        claim, rule = split_rule(v.get("shown", v["claim"]))  # "shown": the Chinese edition's wording
        paper = f"<br><span class='small'>{_t('anchor')}: {cite_html(v['paper'], numbers)}</span>" if v.get("paper") else ""
        check = comparison.get("outcome", {}).get(verdict_id(chapter, v), "") if comparison.get("comparable") else ""
        status = "RETIRED" if retired(v) else v["status"]
        rows.append(f"<tr><td class='{status.lower()}'>{_status(status)}</td><td>{model_of(v)}</td>"
                    f"<td>{cite_html(claim, numbers)}{paper}</td><td class='small'>{html.escape(rule)}</td>"
                    f"<td>{_measured_html(v)}</td><td class='small'>{html.escape(_t(check) if check else check)}</td></tr>")
    return "\n".join(rows)


def number_citations(chapters: list[dict], bibliography: dict) -> dict[str, int]:
    """Reference numbers in the order the page cites them (claim, asserted, reported), then what the chapters cite."""
    keys = []
    for ch in chapters:
        keys += cited_keys(ch.get("claim", ""))
        for v in sorted(ch["verdicts"], key=lambda v: v["status"] not in ASSERTED or retired(v)):
            keys += cited_keys(v["claim"]) + cited_keys(v.get("paper") or "")
    keys += [k for ch in chapters for k in ch.get("cites", [])]
    return {k: i for i, k in enumerate((k for k in dict.fromkeys(keys) if k in bibliography), 1)}


def emphasis(text: str) -> str:
    """Markdown's **bold** and *italic* in a chapter's claim paragraph, as HTML."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"\*(\S(?:.*?\S)?)\*", r"<i>\1</i>", text)


def chapter_section(ch: dict, numbers: dict[str, int], comparison: dict) -> str:
    head = "".join(f"<th>{_t(h)}</th>" for h in ("status", "model", "claim", "rule", "estimate [interval]",
                                                 "vs reference run"))
    head = f"<tr>{head}</tr>"
    asserted = [v for v in ch["verdicts"] if v["status"] in ASSERTED and not retired(v)]
    reported = [v for v in ch["verdicts"] if v not in asserted]
    failed = (f"<p class='fail'><b>{_t('This chapter failed')}</b>: {html.escape(ch['error'])}</p>"
              if ch["error"] else "")
    figure = (f"<figure><img src='figures/{ch['name']}.png' alt='key figure of {html.escape(ch['name'])}'>"
              f"<figcaption>{_t('The chapter’s key figure, as this run drew it.')}</figcaption></figure>"
              if ch.get("figure") else f"<p class='small'>{_t('(no key figure: the chapter drew none in this run)')}</p>")
    none = f"<tr><td colspan=6>{_t('none')}</td></tr>"
    return (f"<h3 id='{ch['name']}'>{html.escape(ch.get('title') or ch['name'])}</h3>{failed}"
            f"<blockquote>{emphasis(cite_html(ch.get('claim', ''), numbers))}</blockquote>{figure}"
            f"<h4>{_t('Asserted ({n})').format(n=len(asserted))}</h4><table>{head}"
            f"{verdict_rows(ch['name'], asserted, numbers, comparison) or none}</table>"
            f"<details><summary>{_t(REPORTED_SUMMARY).format(n=len(reported))}</summary>"
            f"<table>{head}{verdict_rows(ch['name'], reported, numbers, comparison)}</table></details>"
            f"<p>{_t(CHAPTER_LINK).format(name=ch['name'], seconds=ch['seconds'], mib=ch['peak_mib'])}</p>")


REPORTED_SUMMARY = "<b>Reported, not asserted ({n})</b>: measured and shown, but no claim rests on them"
CHAPTER_LINK = "<a href='{name}.html'>The executed chapter</a> (ran in {seconds:.0f} s, peak memory {mib:.0f} MiB)"


def comparison_line(comparison: dict) -> str:
    if not comparison.get("comparable"):
        return f"Not compared with the reference run: {comparison['why']}."
    changed = comparison["compared"] - comparison["agree"]
    line = (f"Against the reference run (commit {comparison['commit'][:12]}, {comparison['date']}): "
            f"{comparison['agree']} of {comparison['compared']} verdicts agree")
    line += f", {changed} changed" if changed else ""
    line += f"; {len(comparison['missing'])} of the reference's are missing" if comparison["missing"] else ""
    edited = comparison.get("registry_changed")
    if edited:
        line += (f". WARNING: notebooks/verdicts.toml differs from the reference run's registry for {', '.join(edited)}: "
                 f"those verdicts were decided on an entry changed after registration, not on the registered one")
    return line + "."


def _short_hash(registry: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(registry, sort_keys=True).encode()).hexdigest()[:12]


def write_index(chapters: list[dict], env: dict, comparison: dict, bibliography: dict, out: Path) -> Path:
    """index.html: per chapter the claim, key figure and verdicts; the references; the environment and command."""
    numbers = number_citations(chapters, bibliography)
    counts = {s: sum(v["status"] == s for ch in chapters for v in ch["verdicts"]) for s in ASSERTED + ("REPORTED",)}
    failed = sum(1 for ch in chapters if ch["error"])
    shown = dict(env, registry=f"{len(env.get('registry', {}))} registered verdicts, fingerprint "
                               f"{_short_hash(env.get('registry', {}))} (per entry in run.json)")
    env_rows = "".join(f"<tr><th>{k}</th><td><code>{html.escape(str(v))}</code></td></tr>"
                       for k, v in shown.items() if k != "command")
    title = _t("Pretrained CNNs, tested: the write-up")
    summary = _t(SUMMARY).format(profile=env["profile"], seeds=env["seeds"], ran=len(chapters) - failed,
                                 chapters=len(chapters), minutes=env["seconds"] / 60, passed=counts["PASS"],
                                 failed=counts["FAIL"], inconclusive=counts["INCONCLUSIVE"], reported=counts["REPORTED"])
    contents = " · ".join(f"<a href='#{ch['name']}'>{ch['name'][:2]}</a>" for ch in chapters)
    page = f"""<!doctype html><html lang="{'zh-CN' if language() == 'zh' else 'en'}"><head><meta charset="utf-8">
<title>{title}</title><style>{STYLE}</style>{font_face(out)}</head><body><h1>{title}</h1>
<p>{summary}
<b>{html.escape(_t(comparison_line(comparison)))}</b></p>
<p class='small'>{_t(HOW_TO_READ)}</p>
<p class='small'>{_t('Chapters')}: {contents} ·
<a href='#references'>{_t('references')}</a> · <a href='#environment'>{_t('environment')}</a></p>
<h2>{_t('Findings, chapter by chapter')}</h2>{''.join(chapter_section(ch, numbers, comparison) for ch in chapters)}
<h2 id='references'>{_t('References')}</h2>{reference_list(numbers, bibliography)}
<h2 id='environment'>{_t('Environment, and the command that reproduces this run')}</h2>
<table>{env_rows}</table><pre>{html.escape(env['command'])}</pre>
<p class='small'>{_t(FOOTER)}</p>
</body></html>"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


SUMMARY = ("Seven claims of an article on the weaknesses of pretrained models, each put to an experiment on a laptop CPU. "
    "Profile <b>{profile}</b>, seeds {seeds}, {ran} of {chapters} chapters ran in "
    "{minutes:.1f} min: {passed} verdicts held, {failed} failed, "
    "{inconclusive} inconclusive, {reported} findings reported without assertion.")
HOW_TO_READ = ("How to read a verdict: PASS means the rule in its row held in this run. An interval verdict's "
    'rule says its kind (an effect whose 95% interval clears a minimum, a non-inferiority margin, or an equivalence '
    'whose 90% interval lies within a bound) and the number of paired units; its threshold was registered in '
    'notebooks/verdicts.toml before the run that confirmed it. A rule "on every seed" is an older per-seed '
    'comparison. RETIRED: registered, failed its confirming run, now reported by the same rule. Reported findings '
    'are listed apart, under each chapter. Papers are numbered as the page first cites them; each links to the '
    'list at the end.')
FOOTER = ("The chapter pages show the exercises with their solutions replaced by stubs (the edition for a "
    "class); the answer key is the notebook itself. Nothing on these pages loads from the network.")
