"""FMRGB's shared internals, one idea per module; the step scripts at the top level wire them.

    decode      ffmpeg and OpenCV: probing, decoding the picture and the sound
    sound       the sound channels (amplitude, dominant frequency, mel image) of a whole track
    convert     one video -> one FMRGB record; the conversion of a whole tree (skip, align)
    record      the `.pt` record on disk: its name, writing it, the one strict reader, "made from this video?"
    scan        the scan file (every video's decoded frame count) that sharded runs agree on
    resized     resized copies: the ffmpeg recipe, the source stamp and "is this a finished copy?"
    deletion    what the delete steps may remove, and why the rest stays
    files       finding files, their names, atomic writes, the CSV/JSON writers
    cli         the per-file run loop, its summary and exit status, argument types
    synthetic   test-pattern videos for tests and benchmarks
    distributed process-group facts (DistContext) and the few collectives training needs
    sampling    the seeded training order shared by plain and DDP runs, and the loaders
    engine      the epoch loop, evaluation and early stopping
    checkpoint  the checkpoint file: what train.py saves and predict.py loads
    report      metrics, the history file and the pictures of a run (matplotlib, Agg)
"""
