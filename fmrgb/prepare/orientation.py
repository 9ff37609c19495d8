"""The picture as a player shows it. ffmpeg applies a stream's display matrix, mirroring included;
OpenCV turns the picture by the matrix's rotation angle but never mirrors it, so its frames of a
mirrored video (a front camera's, a flipped edit's) need one more flip.

    axis = opencv_mirror_axis(ffmpeg.display_matrix("phone.mp4", 0))   # None, 1 (rows) or 2 (columns)
    mirror_in_place(frames, axis, n_pic=3)                               # frames uint8 (T, H, W, C)
"""
import numpy as np

CHUNK = 16  # frames flipped at once: bounds the temporary copy, whatever the video's length


def opencv_mirror_axis(matrix):
    """The axis of (T, H, W, C) frames along which OpenCV's picture must be flipped to match what a
    player shows, for a display matrix (a, b, c, d) (ffmpeg.display_matrix), or None. A mirrored
    matrix (negative determinant) reads to OpenCV as a turn: by a half turn (or none) where the
    picture was mirrored left to right (or upside down), so rows are reversed; by a quarter turn
    where it was mirrored across a diagonal, so columns are."""
    if matrix is None:
        return None
    a, b, c, d = matrix
    if a * d - b * c >= 0:
        return None
    return 1 if abs(a) >= abs(b) else 2


def mirror_in_place(frames, axis, n_pic):
    """Flip the first n_pic channels (the picture) of frames along `axis`, in place, in chunks."""
    for start in range(0, len(frames), CHUNK):  # chunks of frames, not single frames: memory, not speed
        part = frames[start:start + CHUNK, ..., :n_pic]
        part[...] = np.flip(part, axis).copy()
