"""FMRGB's shared internals, one idea per module; the step scripts at the top level wire them.

    ffmpeg      running ffmpeg (a deadline that grows with the video) and the stream facts it reports
    decode      the main video stream's frames (OpenCV, ffmpeg where it must) and the sound track
    memory      the scratch buffer for decoded frames, available memory, refusing what would not fit
    timeline    time along a clip: which source frames a stretched frame is made of, what time it shows
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
    survey      listing and surveying --data: the files, what they hold, whether they stack, which belong together
    clip        the clip recipe: the frames a model sees, resized and normalised, and each channel's role
    sampling    the seeded training order shared by plain and DDP runs, and the loaders
    cache       the training cache: each record's small uint8 clip, made once per recipe, never stale
    settings    a training run's flags checked together, what --resume continues, the settings it uses
    splits      leak-free splits: stratified group splits and K folds, split.json
    engine      the epoch loop, evaluation and early stopping
    checkpoint  the checkpoint file: what train.py saves and predict.py loads, as typed values
    augment     the training augmentation: a random crop and flip of the picture channels only
    pretrained  published weights: the files, download, starting weights, stem inflation, fine-tuning
    report      metrics, the history file and the pictures of a run (matplotlib, Agg)
    experiment  K-fold cross-validation and the ablation "does the sound help?" (paired differences)
    windows     sliding windows over a stream in plain values: spans, the frames held, events above a threshold
    stream      a video file or standard input read in pieces (frames and sound from one ffmpeg run)
    windowclip  one window made into the model's input exactly as a record of that span would be
    sliding     a model slid along a stream, window after window, in bounded memory
    timelines   the timeline CSV, its picture and the events CSV of predict.py --window
    longvideo   predict.py --window: videos or standard input into timelines and events
    annotations temporal annotations of untrimmed videos (a CSV, UCF-Crime's file): which spans show what
    segments    one record per annotated segment of a long video (create_fmrgbdata.py --segments)
    realtime    the real-time factor of predict.py --window and where its time goes (bench.py)
    framelevel  frame-level scores and ROC AUC / AP of untrimmed videos (the UCF-Crime protocol)
"""
