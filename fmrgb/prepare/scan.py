"""The scan file, TARGET/fmrgb_scan.json: every video's decoded frame count, so that the shards of
a job array agree on one output length. This module alone writes and reads it.

    scan, failed = scan_tree("data", report=runloop.Console(), jobs=2)   # counts what changed since the last scan
    n = frames_from_scan("data", videos)                                # the longest count, if the scan still fits
"""
import json
from pathlib import Path

from fmrgb import files, runloop

from fmrgb.prepare import decode

SCAN_FILE = "fmrgb_scan.json"


def file_stamp(path):
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_scan(target):
    try:
        return json.loads((Path(target) / SCAN_FILE).read_text())
    except (OSError, ValueError):
        return None


def scan_tree(target, *, report, jobs=1):
    """Count the decoded frames of every video under `target` into target/fmrgb_scan.json, reusing
    counts of files unchanged since the last scan; warnings and failing videos go to `report`.
    Returns (scan dict, [failed videos])."""
    target = Path(target)
    old = read_scan(target) or {"files": {}}
    entries, todo = {}, []
    for v in files.find_videos(target, on_skip=report.warn):
        try:
            rel, stamp = v.relative_to(target).as_posix(), file_stamp(v)
        except FileNotFoundError:
            report.warn(v, files.VANISHED)
            continue
        prev = old["files"].get(rel)
        if prev and all(prev.get(k) == stamp[k] for k in stamp):
            entries[rel] = prev
        else:
            todo.append(v)
    _, counted, failed = runloop.run_jobs(lambda v: ("scanned", decode.decoded_frame_count(v)), todo, report=report,
                                          jobs=jobs, desc="scan")
    for v, n in counted.items():
        entries[v.relative_to(target).as_posix()] = {"frames": n, **file_stamp(v)}
    scan = {"files": dict(sorted(entries.items())), "max_frames": max((e["frames"] for e in entries.values()), default=0)}
    files.write_text(target / SCAN_FILE, json.dumps(scan, indent=1))
    return scan, failed


def frames_from_scan(target, videos):
    """The scan's maximum frame count, after checking the scan still describes these videos (each
    one scanned and unchanged, and no scanned video gone: its count may be the maximum);
    ValueError naming what to run when it does not."""
    scan = read_scan(target)
    if scan is None:
        raise ValueError(f"a sharded run needs the whole tree's frame count: run "
                         f"'create_fmrgbdata.py --target {target} --scan' once first, or give --frames N")
    for v in videos:
        entry = scan["files"].get(Path(v).relative_to(target).as_posix())
        if entry is None or any(entry.get(k) != val for k, val in file_stamp(v).items()):
            raise ValueError(f"{Path(target) / SCAN_FILE} is out of date ({v} is new or changed): run --scan again")
    gone = sorted(set(scan["files"]) - {Path(v).relative_to(target).as_posix() for v in videos})
    if gone:
        raise ValueError(f"{Path(target) / SCAN_FILE} is out of date ({Path(target) / gone[0]} is gone): "
                         "run --scan again")
    return int(scan["max_frames"])
