"""Guards that no other test missed: each case here is stopped by one guard alone, so weakening that
guard (decoding the copy before a delete, the SHA-256 in a resize stamp, the container's start time,
hashing the whole file, the nearest frame for stretched sound) makes its test fail."""
import numpy as np
import pytest

from conftest import REPORT, damage_until, ffmpeg_make, kept, make_video, run_script
from fmrgb.prepare import convert, ffmpeg, resized, timeline


def test_a_copy_damaged_where_only_decoding_sees_it_keeps_its_original(tmp_path):
    # damage in the second half of the copy: its packets are all there (demuxing sees nothing), only
    # decoding finds the broken pictures
    video = make_video(tmp_path / "a.mp4", seconds=2, audio=None)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy = tmp_path / "resized_a.mp4"

    def only_decoding_sees_it():
        packets, _, demux_errors = ffmpeg.video_stream_length(copy)
        return ffmpeg.video_stream_length(copy, decode=True)[2] and not demux_errors and packets == 60

    damage_until(copy, only_decoding_sees_it, width=64, steps=range(20, 40))
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists(), r.stdout
    assert "errors" in kept(r.stdout, video)


def test_a_copy_with_an_old_stamp_without_sha256_never_lets_a_replaced_original_go(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=1)
    copy = tmp_path / "resized_a.mp4"
    args = resized.resize_args(video, copy, mag=2, copy_audio=True)
    stamp = resized.source_stamp(video, mag=2)
    old = " ".join(w for w in stamp.split() if not w.startswith("sha256="))  # as older versions wrote it
    ffmpeg.run_ffmpeg([f"comment={old}" if a == f"comment={stamp}" else a for a in args])
    make_video(video, seconds=1, audio="0.3*sin(2*PI*880*t)", size=(160, 120))  # a new clip, same name
    assert resized.read_stamp(ffmpeg.probe(copy).comment).get("sha256") is None
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists(), r.stdout
    assert "older resize_video.py" in kept(r.stdout, video)


def test_a_ts_file_whose_container_starts_at_1_4_s_keeps_its_click_on_its_flash(tmp_path):
    flash = "drawbox=x=0:y=0:w=64:h=48:color=white:t=fill:enable='between(t,1,1.03)'"
    click = "if(between(t\\,1\\,1.0333)\\,0.8*sin(2*PI*440*t)\\,0)"
    video = ffmpeg_make(tmp_path / "clip.ts", "-f", "lavfi", "-i", f"color=c=black:s=64x48:r=30:d=2,{flash}",
                        "-f", "lavfi", "-i", f"aevalsrc={click}:s=44100:d=2", "-c:v", "libx264",
                        "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
    assert ffmpeg.probe(video).start > 1.0  # what makes a .ts different: its clock does not start at 0
    frames = convert.convert_video(video)["frames"].float()
    picture, sound = frames[..., 0].mean(dim=(1, 2)), frames[..., 3].mean(dim=(1, 2))
    assert int(picture.argmax()) == 30 and int(sound.argmax()) == 30, sound


def test_a_video_changed_after_its_first_mib_is_not_deleted_for_its_old_record(tmp_path):
    video = ffmpeg_make(tmp_path / "big.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1,noise=alls=60:allf=t+u",
                        "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast")
    assert video.stat().st_size > 3 << 20
    convert.convert_tree(tmp_path, report=REPORT)
    data = bytearray(video.read_bytes())
    data[(2 << 20) + 17] ^= 0xFF  # one byte past the first 2 MiB: same size, same name, other content
    video.write_bytes(bytes(data))
    r = run_script("delete_allmp4.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists(), r.stdout
    assert "another version" in kept(r.stdout, video)


@pytest.mark.parametrize("n_in,n_out", [(10, 7), (7, 10), (45, 30), (3, 100), (100, 3)])
def test_stretched_sound_takes_the_nearest_source_frame(n_in, n_out):
    plan = timeline.stretch_plan(n_in, n_out)
    pos = timeline.source_positions(n_in, n_out)
    assert np.all(np.abs(plan.nearest - pos) <= 0.5), (plan.nearest, pos)
