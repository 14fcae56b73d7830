"""What every chapter starts from: the run profile, its seeds, the A/B halves and a clock.

`chapter = runtime.setup()` is a chapter's first line; `chapter.finish()` its last, printing how long it ran
with which profile and seeds (the budgets it is held to are in the README and docs/design.md, section 6).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

from tqdm.auto import tqdm

from . import i18n
from . import profile as profiles
from .seeds import derive
from .transfer import Halves, load_halves


class Draw(NamedTuple):
    """One unit of a verdict: the run's seed, the draw's number within it, and the draw's own seed."""
    seed: int
    k: int
    draw_seed: int


@dataclass
class Chapter:
    """What every chapter starts from: the run profile, its seeds, the A/B halves and a clock."""

    profile: profiles.Profile
    seeds: tuple[int, ...]
    halves: Halves | None
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None  # set by `finish`

    def per_seed(self, decided: int, quick: int) -> int:
        """Draws per seed: `decided` where the profile decides verdicts, `quick` in the quick profile.

        The quick profile runs fewer draws, so its interval verdicts may say INCONCLUSIVE instead.
        """
        return decided if self.profile.decides else quick

    def draws(self, per_seed: int, desc: str = "draws") -> tqdm:
        """Every draw of the run, seed by seed, with a progress bar: draw k of a seed gets its own target images,
        initialisation and batch order from its own seed, `seeds.derive(seed, f"draw {k}")`."""
        units = [Draw(seed, k, derive(seed, f"draw {k}")) for seed in self.seeds for k in range(per_seed)]
        return tqdm(units, desc=desc)

    def finish(self) -> None:
        """Print how long the chapter ran, with its profile and seeds; the number stays in `seconds`.

        Returns nothing, so a chapter's last cell shows the one line and no stray `Out:` value.
        """
        self.seconds = time.perf_counter() - self.started
        print(i18n.text(f"Chapter ran in {self.seconds:.0f} s (profile {self.profile.name}, seeds {list(self.seeds)})."))


def setup(halves: bool = True) -> Chapter:
    """One call at the top of a chapter: read the profile (and $TUTORLIB_SEEDS), load A and B, start the clock."""
    prof = profiles.current()
    chapter = Chapter(prof, prof.seeds, load_halves(prof) if halves else None)
    sizes = (f", A train={len(chapter.halves.a_train[1])}, B train pool={len(chapter.halves.b_train[1])}, "
             f"B test={len(chapter.halves.b_test[1])}") if halves else ""
    print(f"profile={prof.name}, seeds={prof.seeds}{sizes}")
    return chapter
