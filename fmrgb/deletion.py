"""What the two delete steps may remove: only files that are provably redundant. Each plan is a list
of (path, None) for a file that may go and (path, reason) for one that stays; runloop.apply_deletions
carries it out. Folders left out and the progress go to the caller's `report` (runloop).

    plan = originals_with_copies("data", report=runloop.Console())     # delete_not_resized.py
    plan = converted_videos("data", report=runloop.Console())          # delete_allmp4.py
"""
from fmrgb import files
from fmrgb.record import conversion_problem
from fmrgb.resized import is_complete_copy


def originals_with_copies(target, *, report):
    """Originals whose resized_ copy is finished, was made from their very bytes (its stamp),
    decodes without errors and holds as many frames; every other original stays, with the reason."""
    originals = [v for v in files.find_videos(target, on_skip=report.warn) if not files.is_resized(v)]
    names = files.resized_names(originals)
    plan = []
    for video in report.progress(originals, len(originals), "check"):
        ok, why = is_complete_copy(video, names[video], decode=True)
        plan.append((video, None if ok else why))
    return plan


def converted_videos(target, *, report, delete_all=False, accept_loss=False):
    """Videos whose record loads, was made from this very file (its bytes' digest) and holds all its
    frames at full size (or fewer or smaller ones, with accept_loss); with delete_all every video."""
    videos = files.find_videos(target, on_skip=report.warn)
    checked = report.progress(videos, len(videos), "check")
    return [(v, None if delete_all else conversion_problem(v, accept_loss=accept_loss)) for v in checked]
