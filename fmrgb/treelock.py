"""One step at a time on a tree: a lock on the --target folder, held for the whole run.

    with hold("data"):                 # a step that writes or deletes under data
    with hold("data", shared=True):    # training: reads the records, adds only its cache

flock(2) on the folder itself, so nothing is written into it; the kernel lets go when the process
(and the worker processes that share its descriptor) ends, however it ends. A step that finds
the lock taken raises TreeBusy at once, naming the process that holds it, rather than waiting
an unknown time or racing it for the same files. Where the file system cannot lock a folder at all (NFS
refuses flock on a folder opened to read), the lock is not there: its `unlocked` says why, and the step goes
on after saying so.
"""
import fcntl
import os
from pathlib import Path


class TreeBusy(RuntimeError):
    """Another step holds the folder's lock."""


class TreeLock:
    """The lock of one folder, taken on creation; released by close() or at the end of a with block."""

    def __init__(self, folder, *, shared=False):
        self.folder, self.unlocked = Path(folder), None
        self.fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise TreeBusy(f"{self.folder}: another step is working on this folder ({holder(self.folder)}): "
                           "run this one when it has finished") from None
        except OSError as e:  # EBADF, ENOLCK: this file system locks no folder; better unguarded than unusable
            self.unlocked = e.strerror or str(e)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def hold(folder, *, shared=False):
    """The folder's lock (exclusive, or shared with other readers); TreeBusy when it is taken."""
    return TreeLock(folder, shared=shared)


def holder(folder):
    """'pid N: script.py' of a process holding a lock on `folder` (from /proc/locks), or what is known."""
    st = os.stat(folder)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            pids = [ln.split()[4] for ln in f if len(ln.split()) > 5 and ln.split()[5] == inode]
    except OSError:
        pids = []
    if not pids:
        return "its process is not known"
    try:
        with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
            argv = [os.fsdecode(a) for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    script = next((Path(a).name for a in argv if a.endswith(".py")), Path(argv[0]).name if argv else "")
    return f"pid {pids[0]}" + (f": {script}" if script else "")
