"""Records -> models (steps 6-7), one idea per module:

    distributed  process-group facts (DistContext) and the few collectives training needs
    survey       listing and surveying --data: the files, what they hold, whether they stack, which belong together
    splits       leak-free splits: stratified group splits and K folds, split.json
    clip         the clip recipe: the frames a model sees, resized and normalised, and each channel's role
    cache        the training cache: each record's small uint8 clip, made once per recipe, never stale
    augment      the training augmentation: a random crop and flip of the picture channels only
    sampling     the seeded training order shared by plain and DDP runs, and the loaders
    settings     a training run's flags checked together, what --resume continues, the settings it uses
    engine       the epoch loop, evaluation and early stopping
    checkpoint   the checkpoint file: what train.py saves and predict.py loads, as typed values
    pretrained   starting weights: the published files, a train.py checkpoint, channels by name
    experiment   K-fold cross-validation and the ablation "does the sound help?" (paired differences)
    intervals    honest intervals: the corrected resampled t-test over folds, the paired bootstrap over test clips
    evaluate     predict.py on labelled data: true classes, metrics and pictures by training's test code
    smallrecords bench.py's small part: --size 112 --frames 32 records of 720p clips against decoding them, the loader
"""
