"""Running a notebook in a fresh kernel: its memory peak, Ctrl-C and SIGTERM that end it, its first error."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

class PeakMemory:
    """Poll the resident memory of this process's children (the notebook kernel) in a thread."""

    def __init__(self, interval: float = 0.25):
        import psutil

        self.me, self.interval, self.peak_bytes = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            total = 0
            for child in self.me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except Exception:  # the kernel exited between listing and reading it
                    pass
            self.peak_bytes = max(self.peak_bytes, total)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def kernel_config():
    """Kernels with CurveZMQ keys where libzmq has them: the kernel then has no unencrypted TCP to warn about."""
    import zmq
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto" if zmq.has("curve") else "disabled"}})


class BuildStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a build: stop there (a KeyboardInterrupt, so asyncio lets it through)."""


def _raise_stop(signum: int, _frame=None) -> None:
    import signal

    raise BuildStopped(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into BuildStopped between chapters (nbclient resets both after each one)."""
    import signal

    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)


def notebook_client(nb, **options):
    """An nbclient that stops on SIGINT/SIGTERM; nbclient's own handlers shut the kernel down and carry on."""
    import asyncio
    import contextlib
    import signal

    from nbclient import NotebookClient

    class StoppableClient(NotebookClient):
        async def async_start_new_kernel(self, **kwargs) -> None:
            await super().async_start_new_kernel(**kwargs)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):  # replaces nbclient's handlers, installed just before
                with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows; not the main thread
                    loop.add_signal_handler(signum, _raise_stop, signum)

    return StoppableClient(nb, kernel_name="python3", config=kernel_config(), **options)  # owns and ends its kernel


def kill_kernels(grace: float = 3.0) -> None:
    """End every process this one started (the chapter's kernel): politely first, then for certain."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        child.kill()


def execute(path: Path, results: Path, timeout: int = 1800, keep_going: bool = False,
            run_in: Path | None = None) -> tuple[object, str | None, float]:
    """Run one notebook top to bottom in a fresh kernel; return (executed notebook, first error or None, peak MiB).

    keep_going: run every cell even after one fails, so that every verdict is evaluated (`make confirm`).
    run_in: the kernel's working folder (default: the notebook's own; the Chinese chapters run in notebooks/).
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    results.unlink(missing_ok=True)
    # The kernel's environment: where verdicts go, and explorers draw static figures (nobody can click).
    env = {**os.environ, "TUTORLIB_RESULTS": str(results), "TUTORLIB_HEADLESS": "1"}
    client = notebook_client(nb, timeout=timeout, allow_errors=keep_going,
                             resources={"metadata": {"path": str(run_in or path.parent)}})
    error = None
    with PeakMemory() as memory:
        try:
            client.execute(env=env)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no kernel may outlive the build
            kill_kernels()
            raise
        except CellExecutionError as err:
            error = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[-1]  # no terminal colours
        except Exception as err:  # kernel died, timeout ...
            error = f"{type(err).__name__}: {err}"
    return nb, error or first_error(nb), memory.peak_bytes / 2**20


def first_error(nb) -> str | None:
    """The first error a notebook's outputs show (cells run with keep_going still record theirs)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out['ename']}: {out['evalue']}"[:300]
    return None
