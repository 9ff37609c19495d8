"""What the two delete steps may remove: only files that are provably redundant, judged again at the
moment each one goes. A plan is a list of Decision: a file that stays (with the reason), one that
is gone already, or one that may go, with what its checks rested on; runloop.apply_deletions carries
it out, and Decision.delete() unlinks a file only while it is still the very file that was checked.
Folders left out and the progress go to the caller's `report` (runloop).

    plan = originals_with_copies("data", report=runloop.Console())     # delete_not_resized.py
    plan = converted_videos("data", report=runloop.Console())          # delete_allmp4.py
"""
import dataclasses
import os
import stat
from pathlib import Path

from fmrgb import files
from fmrgb.prepare.record import conversion_problem, record_path, recorded_source_digest
from fmrgb.prepare.resized import is_complete_copy

@dataclasses.dataclass(frozen=True)
class FileState:
    """Which file is at a name (device, inode) and its last change: any write, rename over it, or
    change of its times moves ctime, which no user can set back."""
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def file_state(path):
    """The FileState of `path` (not following a link), None when it is not a regular file;
    FileNotFoundError when there is nothing."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileState(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One file of a plan. reason None: it may go, while its bytes are those that were checked
    (their SHA-256, `digest`; None when nothing was checked, with --all) and the files its checks
    read (rests_on: (path, FileState) pairs) are unchanged."""
    path: Path
    reason: str | None = None
    gone: bool = False
    digest: str | None = None
    rests_on: tuple = ()

    def change(self):
        """None while the file and what its checks rested on are as they were when checked, else why
        it now stays. FileNotFoundError when the file itself is gone."""
        for other, was in self.rests_on:
            try:
                now = file_state(other)
            except FileNotFoundError:
                now = None
            if now != was:
                return f"{Path(other).name} changed since the check, which no longer holds"
        before = file_state(self.path)
        if self.digest is not None and files.file_digest(self.path) != self.digest:
            return "its content changed since it was checked"
        if file_state(self.path) != before:
            return "changed while it was checked again"
        return None

    def delete(self):
        """Unlink the file when change() finds nothing; returns None when deleted, else why it stays.
        FileNotFoundError when it is gone; other OSErrors as unlink raises them."""
        problem = self.change()
        if problem is None:
            os.unlink(self.path)  # unlink removes a link itself, never what it points to
        return problem


def _checked(path, check):
    """Decision for `path` from check() -> (reason or None, digest, rests_on), with the file's state
    taken before the check, so a change during it counts too; a file that vanishes is gone."""
    try:
        state = file_state(path)
        reason, digest, rests_on = check()
        if reason is None and file_state(path) != state:
            reason = "changed while it was checked"
    except FileNotFoundError as e:
        if os.path.lexists(path):  # what vanished is a file the check read, not this one
            return Decision(path, f"{Path(e.filename).name if e.filename else 'a file it needs'} is gone")
        return Decision(path, gone=True)
    except OSError as e:
        return Decision(path, f"cannot be read ({e.strerror or e})")
    return Decision(path, reason, digest=digest, rests_on=rests_on)


def _states(*paths):
    return tuple((p, file_state(p) if os.path.lexists(p) else None) for p in paths)


def originals_with_copies(target, *, report):
    """Originals whose resized_ copy is finished, was made from their very bytes (its stamp),
    decodes without errors and holds as many frames; every other original stays, with the reason."""
    originals = [v for v in files.find_videos(target, on_skip=report.warn) if not files.is_resized(v)]
    names = files.resized_names(originals)

    def check(video):
        copy = names[video]
        rests_on = _states(copy)
        digest = files.file_digest(video)
        ok, why = is_complete_copy(video, copy, decode=True, digest=digest)
        return (None if ok else why), digest, rests_on

    return [_checked(v, lambda v=v: check(v)) for v in report.progress(originals, len(originals), "check")]


def converted_videos(target, *, report, delete_all=False, accept_loss=False):
    """Videos whose record loads, was made from this very file (its bytes' digest) and holds all its
    frames at full size (or fewer or smaller ones, with accept_loss); with delete_all every video."""
    videos = files.find_videos(target, on_skip=report.warn)

    def check(video):
        if delete_all:
            return None, None, ()
        pt = record_path(video)
        rests_on = _states(pt)
        problem = conversion_problem(video, accept_loss=accept_loss)
        return problem, (None if problem else recorded_source_digest(pt)), rests_on

    return [_checked(v, lambda v=v: check(v)) for v in report.progress(videos, len(videos), "check")]
