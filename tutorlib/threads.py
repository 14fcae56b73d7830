"""CPU threads: one fixed count per machine, so a seeded run gives the same numbers whether the laptop is busy or not.

Two facts set the policy (`benchmarks/bench_load.py` measures both):

* Float sums depend on how many threads share them: a convolution's weight gradient computed by 1 and by 2
  threads differs in the last bits, and after a few hundred steps the accuracy differs in the third
  decimal. A count that follows the machine's load makes a chapter's numbers depend on what else runs.
* PyTorch's OpenMP threads spin while they wait for each other. When another program keeps a core busy,
  a thread that shares that core runs late, and every step waits for it: with as many threads as cores,
  training became 2-3x slower beside one busy process, 5-9x with some workloads.

So tutorlib sets torch to one thread per core *but one*, once, when it is imported, and never changes it:
the spare core absorbs a second notebook, the grader or a browser, and the numbers do not move. On a
2-core laptop that is one thread: about 1.3x slower than two when the machine is idle, and about as fast
beside a busy process. Set ``TUTORLIB_THREADS=n`` (or ``OMP_NUM_THREADS``) to choose the count yourself
(results are then the same for everyone who uses that count).
"""
from __future__ import annotations

import os

import psutil
import torch

ENV_VAR = "TUTORLIB_THREADS"
MAX_THREADS = torch.get_num_threads()  # torch's own default: one per core


def pinned() -> int | None:
    """The thread count the user fixed with $TUTORLIB_THREADS or $OMP_NUM_THREADS, if any."""
    for var in (ENV_VAR, "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"${var}={value!r} must be a positive whole number of threads, e.g. {var}=2.")
            cores = os.cpu_count() or 1
            if int(value) > cores:
                raise ValueError(f"${var}={value} asks for more threads than this machine's {cores} logical cores: "
                                 f"they would take turns and every step would wait. Use {var}={cores} or fewer.")
            return int(value)
    return None


def course_default() -> int:
    """One thread per physical core but one (at least one): a core stays free for the rest of the machine."""
    cores = psutil.cpu_count(logical=False) or MAX_THREADS
    return max(1, min(MAX_THREADS, cores - 1))


def configure() -> int:
    """Set torch's thread count to the pinned one or the course default, and return it.

    Called once when tutorlib is imported. It depends on the machine, never on its load.
    """
    count = pinned() or course_default()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
