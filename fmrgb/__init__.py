"""FMRGB's shared internals; the step scripts at the top level wire them. Two halves, one per subpackage:

    prepare/    videos -> `.pt` records (steps 1-5: resize, delete originals, convert, look, delete videos)
    training/   records -> models (steps 6-7: survey and split, the clip recipe, fit, checkpoints, experiments)
    streaming/  long videos and live input, window by window (predict.py --window, --segments)

and what both use, here:

    files       finding files, their names, atomic writes, the CSV/JSON writers
    cli         error lines, exit statuses, argument types, holding the tree a step works on
    runloop     the per-file run loop (worker processes that end with their parent), what a step prints
    treelock    one step at a time on a tree: the folder's lock and who holds it
    report      metrics, the history file and the pictures of a run (matplotlib, Agg)
    measure     wall and CPU seconds of a call, a quiet machine before it (bench.py, the real-time factor)

Imports point one way: prepare <- training <- streaming (training may use prepare's record format and
channel names, never the reverse), and all three use the modules here.
"""
