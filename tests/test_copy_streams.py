"""A resized copy holds everything its original holds before the original may go: every video
stream and sound track, text subtitles, attached pictures, the frames' own times (a variable frame
rate); an original with something the mp4 copy cannot hold (a font attachment, a data stream) stays,
with the reason."""
from conftest import REPORT, ffmpeg_make, kept, make_video, run_script
from fmrgb.prepare import decode, ffmpeg, resized


def kinds(path):
    return [(st.kind, st.attached) for st in ffmpeg.probe(path).streams]


def dashcam(path):
    """Front and rear cameras, two sound tracks and a text subtitle, as a dashcam writes them."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\n12 km/h\n")
    return ffmpeg_make(path, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1",
                       "-f", "lavfi", "-i", "testsrc=size=64x48:rate=15:duration=1",
                       "-f", "lavfi", "-i", "sine=f=440:d=1", "-f", "lavfi", "-i", "sine=f=880:d=1", "-i", srt,
                       "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4", "-c:v", "libx264",
                       "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "mov_text")


def test_a_dashcam_files_copy_holds_both_cameras_both_tracks_and_the_subtitles(tmp_path):
    video = dashcam(tmp_path / "cam.mp4")
    srt = video.with_suffix(".srt")
    srt.unlink()
    want = kinds(video)
    assert want == [("Video", False)] * 2 + [("Audio", False)] * 2 + [("Subtitle", False)]
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy = tmp_path / "resized_cam.mp4"
    assert not failed and kinds(copy) == want
    assert [st.width for st in ffmpeg.probe(copy).streams[:2]] == [80, 32]  # each camera halved, front first
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and not video.exists(), r.stdout


def test_a_copy_without_the_second_camera_keeps_its_original(tmp_path):
    video = dashcam(tmp_path / "cam.mp4")
    video.with_suffix(".srt").unlink()
    copy = tmp_path / "resized_cam.mp4"
    ffmpeg.run_ffmpeg(resized.resize_args(video, copy, mag=2, copy_audio=True, video="0:0"))  # the front camera alone
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists()
    assert kept(r.stdout, video) == "resized copy holds 1 of the original's 2 video streams"


def test_an_original_with_an_attachment_the_copy_cannot_hold_stays_with_the_reason(tmp_path):
    font = tmp_path / "sub.ttf"
    font.write_bytes(b"\x00\x01\x00\x00" + bytes(60))
    video = ffmpeg_make(tmp_path / "film.mkv", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-attach", font,
                        "-metadata:s:t", "mimetype=font/ttf")
    font.unlink()
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert not failed and (tmp_path / "resized_film.mkv.mp4").exists()
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists()
    assert "attachment stream" in kept(r.stdout, video)


def test_a_variable_frame_rate_originals_copy_has_the_same_frames_and_it_goes(tmp_path):
    # 30 frames over 1.5 s: the first 15 every 2/30 s, the rest every 1/30 s
    video = ffmpeg_make(tmp_path / "vfr.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                        "-vf", "setpts='if(lt(N,15),2*N,N+15)/TB/30'", "-fps_mode", "vfr",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy = tmp_path / "resized_vfr.mp4"
    assert decode.decoded_frame_count(copy) == decode.decoded_frame_count(video) == 30
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and not video.exists(), r.stdout
