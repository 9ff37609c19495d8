"""The per-file run loop every step runs its files through, and what a step shows while it runs.

    report = Console()                                   # what a script hands the library functions
    counts, values, failed = run_jobs(fn, items, report=report, jobs=2, desc="convert", processes=True)
    print(summary(counts, [("converted", "converted")]))   # converted 118, failed 1

Library functions never print: they take the `report` their caller gives them and hand it each
warning (report.warn) and failing file (report.fail) as it comes, and show their progress through
report.progress. Only scripts make a Console, which prints those lines on stderr above the
progress bar. Deleting (apply_deletions) lists what it keeps and deletes on stdout.
"""
import contextlib
import ctypes
import dataclasses
import functools
import os
import signal
import sys
import threading
import time

from fmrgb.cli import fail_line, show_path, warn


class Console:
    """A step's report on the terminal: one line per warning and per failing file on stderr, above
    the progress bar."""

    def warn(self, path, message):
        warn(path, message)

    def fail(self, path, err):
        from tqdm import tqdm

        tqdm.write(fail_line(path, err), file=sys.stderr)

    def progress(self, iterable, total, desc, unit="file"):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=None, leave=False, file=sys.stderr)


def summary(counts, order):
    """One line such as 'converted 118, skipped 2 (up to date), failed 1'."""
    known = {key for key, _ in order} | {"failed"}
    parts = [f"{word} {counts.get(key, 0)}" for key, word in order]
    parts += [f"{k} {v}" for k, v in sorted(counts.items()) if k not in known]
    return ", ".join(parts + [f"failed {counts.get('failed', 0)}"])


# ----------------------------------------------------------------------------- the run loop

@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a job returns when it has more to say than a status word: a value for the caller, and
    warnings that the run loop reports in the parent (a worker process's own prints could be lost)."""
    status: str
    value: object = None
    warnings: tuple = ()


WORKER_DIED = "its worker process died (a crash inside a decoder library, or killed for lack of memory)"


def run_jobs(fn, items, *, report, jobs=1, desc="", processes=False):
    """Call fn(item) for each item (in `jobs` workers), showing progress through `report`.

    fn returns a status word, (status word, value) or an Outcome. A failing item goes to
    report.fail(item, error) and the run goes on. With processes=True every item runs in a worker
    process (even with jobs=1), so a file that crashes the process costs only itself.
    Returns ({status: count}, {item: value}, [failed items]).
    """
    items = list(items)
    counts, values, failed = {}, {}, []
    bar = report.progress(None, len(items), desc)

    def record(item, result=None, err=None):
        if err is not None:
            report.fail(item, err)
            failed.append(item)
            status = "failed"
        elif isinstance(result, Outcome):
            status = result.status
            if result.value is not None:
                values[item] = result.value
            for message in result.warnings:
                report.warn(item, message)
        elif isinstance(result, tuple):
            status, values[item] = result
        else:
            status = result
        counts[status] = counts.get(status, 0) + 1
        bar.update(1)

    try:
        if processes:
            _run_in_processes(fn, items, jobs, record)
        elif jobs <= 1 or len(items) <= 1:
            _run_here(fn, items, record)
        else:
            _run_in_threads(fn, items, jobs, record)
    finally:
        bar.close()
    return counts, values, failed


def _run_here(fn, items, record):
    for item in items:
        try:
            result = fn(item)
        except Exception as e:  # one bad file must not stop the others
            record(item, err=e)
        else:
            record(item, result)


def _run_in_threads(fn, items, jobs, record):
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(fn, item): item for item in items}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as e:
                record(futures[fut], err=e)
            else:
                record(futures[fut], result)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C stops now, not after the queue
        raise
    pool.shutdown()


def _run_in_processes(fn, items, jobs, record):
    """Worker processes that survive a worker's death: the items it left unfinished run again, one
    worker taking them in order, so the one that was running when a worker died again is known
    (and named as failed); the rest go back to `jobs` workers."""
    pending, width = items, jobs
    while pending:
        n_workers = min(width, len(pending))
        unfinished = _process_round(fn, pending, n_workers, record)
        position = {item: k for k, item in enumerate(pending)}
        unfinished.sort(key=position.__getitem__)
        if unfinished and n_workers == 1:
            # one worker takes its items in order: the first unfinished one was running when it died
            record(unfinished[0], err=RuntimeError(WORKER_DIED))
            unfinished, width = unfinished[1:], jobs
        elif unfinished:
            width = 1  # find the culprit with one worker, then go wide again
        pending = unfinished


def _process_round(fn, items, n_workers, record):
    """Run items in a pool of n_workers processes; returns those a dead worker left unfinished."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=functools.partial(_worker_signals, os.getpid()))
    unfinished = []
    try:
        futures = {pool.submit(fn, item): item for item in items}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool:
                unfinished.append(futures[fut])
            except Exception as e:
                record(futures[fut], err=e)
            else:
                record(futures[fut], result)
    except KeyboardInterrupt:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()  # their SIGTERM handler lets atomic_output clean up
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return unfinished


def _worker_signals(parent):
    """In a worker process: Ctrl-C reaches the whole process group, but the parent decides (an idle
    worker hit by SIGINT would print a traceback); SIGTERM from the parent unwinds the task, so
    temporary files are removed, and exits quietly. The worker ends with its parent, however that
    ended (end_with_parent)."""
    import faulthandler

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    faulthandler.disable()  # a worker that crashes is reported by the parent in one line, not a dump

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)
    end_with_parent(parent)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 0.2  # how often a worker looks whether its parent is still there
UNWIND_S = 1.0  # how long a worker whose parent is gone may take to remove its temporary file


def end_with_parent(parent):
    """Make this process end when process `parent` does, whatever ended it (kill -9 included): on
    Linux the kernel sends SIGTERM at once (PR_SET_PDEATHSIG); everywhere a thread sees the parent
    change, sends SIGTERM itself, and after UNWIND_S ends the process outright (a worker waiting on
    its task queue, or on a result pipe no one reads, would otherwise wait forever)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the line above took effect
        os._exit(128 + signal.SIGTERM)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # unwinds the task: atomic_output removes its temporary file
    time.sleep(UNWIND_S)
    os._exit(128 + signal.SIGTERM)


# ----------------------------------------------------------------------------- deleting

def apply_deletions(decisions, *, dry_run=False):
    """decisions: deletion.Decision of each file. Prints a line per kept file, per file gone meanwhile
    (and per deletion on a dry run), deletes each file that may go through its Decision.delete(),
    which judges it again right then, and returns ({status: count}, [paths that failed])."""
    counts, failed = {"deleted": 0, "kept": 0, "gone": 0}, []

    def keep(path, reason):
        print(f"kept {show_path(path)}: {reason}")
        counts["kept"] += 1

    def gone(path):
        print(f"gone {show_path(path)}: removed by something else while this step ran")
        counts["gone"] += 1

    for decision in decisions:
        path = decision.path
        if decision.gone:
            gone(path)
        elif decision.reason is not None:
            keep(path, decision.reason)
        elif dry_run:
            print(f"would delete {show_path(path)}")
            counts["deleted"] += 1
        else:
            try:
                reason = decision.delete()
            except FileNotFoundError:
                gone(path)
            except OSError as e:
                print(fail_line(path, e.strerror or e), file=sys.stderr)
                failed.append(path)
            else:
                if reason is None:
                    counts["deleted"] += 1
                else:
                    keep(path, reason)
    counts["failed"] = len(failed)
    return counts, failed


def deletion_summary(counts, dry_run):
    verb = "would delete" if dry_run else "deleted"
    gone = f", gone {counts['gone']}" if counts.get("gone") else ""
    return f"{verb} {counts['deleted']}, kept {counts['kept']}{gone}, failed {counts['failed']}"
