"""Long videos and live input, window by window (predict.py --window, create_fmrgbdata.py --segments):

    stream       a video file or standard input read in pieces (frames and sound from one ffmpeg run)
    windows      sliding windows over a stream in plain values: spans, the frames held, events above a threshold
    windowclip   one window made into the model's input exactly as a record of that span would be
    sliding      a model slid along a stream, window after window, in bounded memory
    timelines    the timeline CSV, its picture and the events CSV of predict.py --window
    longvideo    predict.py --window: videos or standard input into timelines and events
    annotations  temporal annotations of untrimmed videos (a CSV, UCF-Crime's file): which spans show what
    framelevel   frame-level scores and ROC AUC / AP of untrimmed videos (the UCF-Crime protocol)
    segments     one record per annotated segment of a long video (create_fmrgbdata.py --segments)
    realtime     the real-time factor of predict.py --window and where its time goes (bench.py)
"""
