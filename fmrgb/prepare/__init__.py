"""Videos -> FMRGB records (steps 1-5), one idea per module:

    ffmpeg       running ffmpeg (a deadline that grows with the video); the stream facts (PyAV)
    decode       the main video stream's frames and the sound track
    decoders     the two passes over a stream: OpenCV in-process, ffmpeg's raw pipe
    framesinks   where decoded frames go: all kept, a stretched clip's selection, or only counted
    orientation  the picture as a player shows it (the flip OpenCV's picture of a mirrored video lacks)
    diskspace    the bytes a conversion's records need, refused before it starts when the disk cannot hold them
    memory       the scratch buffer for decoded frames, available memory, refusing what would not fit
    timeline     time along a clip: which source frames a stretched frame is made of, what time it shows
    sound        the sound channels (amplitude, dominant frequency, mel image) of a whole track
    record       the `.pt` record on disk: its name, writing it, the one strict reader, "made from this video?"
    convert      one video -> one record; the conversion of a whole tree (skip, align)
    scan         the scan file (every video's decoded frame count) that sharded runs agree on
    resized      resized copies: the ffmpeg recipe, the source stamp and "is this a finished copy?"
    deletion     what the delete steps may remove, and why the rest stays (judged again at each delete)
    synthetic    test-pattern videos for tests and benchmarks
"""
