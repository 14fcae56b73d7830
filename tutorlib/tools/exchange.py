"""nbgrader's exchange for a class on one server, without its two permission holes; imported by every server.

`python -m tutorlib.course hub` copies this file into the hub folder as `jupyter/tutorlib_exchange.py`, and
nbgrader's config names its classes (`ExchangeFactory`). Each student's server imports it, so it imports nothing
from tutorlib: the package imports torch, which would cost every server about 0.6 GB of memory.

The exchange root belongs to root (0755) and only the course's folder in it to the grader account: stock
nbgrader checks on every command that the root is writable and makes it world-writable on release
(nbgrader#1225); these classes only check that it can be entered, and a submission stays readable by its
student and the grader account alone (nbgrader#978).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nbgrader.exchange import default as default_exchange


class _KeepRoot:
    """nbgrader's exchange, except that the root need not be writable by everyone (nbgrader#1225).

    Stock nbgrader checks on every command that the exchange root is writable and, on release, makes it
    world-writable. With `path_includes_course` nothing is written in the root itself: setup.sh creates it
    (root, 0755) and the course's folder in it (the grader account's), so only that folder's own
    permissions (outbound 0755, inbound 2733) govern who may write what.
    """

    def ensure_root(self):
        if not os.path.isdir(self.root) or not os.access(self.root, os.X_OK):
            self.fail(f"The exchange {self.root} does not exist or cannot be entered: run the course's setup.sh as root.")


class _PrivateSubmission(_KeepRoot):
    """A submission readable by its student and the grader account (the inbound folder's group), nobody else.

    Stock nbgrader leaves each submission folder world-writable and its files world-readable (nbgrader#978),
    hidden only by a random name that listing the inbound folder (0733) does not reveal.
    """

    def do_copy(self, src, dest, log=None):
        """nbgrader's copy, but the folder keeps the group it inherits from inbound (copytree's copystat resets
        the set-group-ID bit, and the files written next would get the student's own group)."""
        keep = shutil.copystat

        def copystat(source, target, *, follow_symlinks=True):
            if os.path.abspath(target) != os.path.abspath(dest):
                keep(source, target, follow_symlinks=follow_symlinks)

        shutil.copystat = copystat
        try:
            super().do_copy(src, dest, log)
        finally:
            shutil.copystat = keep

    def copy_files(self):
        super().copy_files()
        for folder, _, files in os.walk(Path(self.inbound_path, self.assignment_filename)):
            os.chmod(folder, 0o770)  # the student and the grader account (its group); nobody else
            for name in files:
                os.chmod(Path(folder, name), 0o640)


KEEP_ROOT = {role: type(f"KeepRoot{base.__name__}", (_KeepRoot, base), {"__module__": __name__}) for role, base in {
    "fetch_assignment": default_exchange.ExchangeFetchAssignment, "fetch_feedback": default_exchange.ExchangeFetchFeedback,
    "release_assignment": default_exchange.ExchangeReleaseAssignment,
    "release_feedback": default_exchange.ExchangeReleaseFeedback, "list": default_exchange.ExchangeList,
    "collect": default_exchange.ExchangeCollect}.items()}
KEEP_ROOT["submit"] = type("KeepRootExchangeSubmit", (_PrivateSubmission, default_exchange.ExchangeSubmit),
                           {"__module__": __name__})
globals().update({cls.__name__: cls for cls in KEEP_ROOT.values()})  # importable by the names nbgrader's config gives
