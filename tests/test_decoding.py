"""Decoding what real trees hold: clips damaged in the middle, files with several video streams,
sound that starts before the picture, NTSC frame rates, videos larger than memory, long videos,
stretched clips; and the channel definitions pinned exactly."""
from pathlib import Path

import numpy as np
import pytest
import torch

import visualize
from conftest import REPORT, load_pt, make_video, pt_dict, run_script
from fmrgb.prepare import convert, decode, decoders, ffmpeg, framesinks, memory, resized, sound, timeline
from fmrgb.prepare.record import load_record

TONE = "0.5*sin(2*PI*440*t)"


def click(start, seconds=1 / 30):
    """An aevalsrc expression: a loud 440 Hz burst from `start` for `seconds`, silence elsewhere."""
    return f"if(between(t\\,{start:.6f}\\,{start + seconds:.6f})\\,0.8*sin(2*PI*440*t)\\,0)"


def ffmpeg_make(path, *args):
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run_ffmpeg(["-y", *args, ffmpeg.input_arg(path)])
    return path


def damage_mdat(path, *, at=0.5, size=4000, seed=0):
    """Overwrite `size` bytes in the middle of an mp4's media data with seeded garbage."""
    data = bytearray(path.read_bytes())
    i = 0
    while i + 8 <= len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        if data[i + 4:i + 8] == b"mdat":
            break
        i += n
    start = i + 8 + int((n - 8) * at)
    data[start:start + size] = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def amplitude(video, **kw):
    return convert.convert_video(video, **kw)["frames"][:, 0, 0, 3].numpy()


# ----------------------------------------------------------------------------- damaged clips

def test_a_clip_damaged_in_the_middle_keeps_every_frame_that_decodes_and_says_what_was_lost(tmp_path, capsys):
    video = damage_mdat(make_video(tmp_path / "d.mp4", seconds=4, extra=["-g", "15"]))
    decoded, _, errors = ffmpeg.video_stream_length(video, decode=True)
    assert errors and 100 < decoded < 120  # damaged in the middle: ffmpeg skips a few frames, decodes the rest
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    rec = load_pt(tmp_path / "d.mp4.pt")
    assert not failed and rec["source_frames"] == rec["frames"].shape[0] == decoded
    assert decode.decoded_frame_count(video) == decoded  # what the delete steps compare a record with
    assert rec["damaged_frames"] > 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning: ") and "d.mp4" in ln]
    assert any("damaged frames" in ln for ln in warnings), warnings


def test_an_avi_whose_index_lists_more_frames_than_decode_counts_the_decoded_ones(tmp_path):
    # AVI keeps an empty index entry for each frame the encoder dropped: only decoded frames count
    video = ffmpeg_make(tmp_path / "drop.avi", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                        "-vf", "setpts='if(lt(N,15),2*N,N+15)/TB/30'", "-fps_mode", "vfr", "-c:v", "mpeg4")
    cv2 = decoders.cv2_module()
    assert cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT) > 30
    assert decode.decoded_frame_count(video) == convert.convert_video(video)["source_frames"] == 30


# ----------------------------------------------------------------------------- the main video stream

def make_still_first(path, *, still_default=True):
    """An mkv whose first video stream is a one-frame still, then the real 1 s 160x120 video."""
    flags = ["-disposition:v:0", "default", "-disposition:v:1", "0"] if still_default else []
    return ffmpeg_make(path, "-f", "lavfi", "-i", "color=c=red:s=64x48:r=25:d=0.04",
                       "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1",
                       "-f", "lavfi", "-i", f"aevalsrc={TONE}:s=44100:d=1",
                       "-map", "0:v", "-map", "1:v", "-map", "2:a", "-c:v:0", "mjpeg",
                       "-c:v:1", "libx264", "-preset", "ultrafast", "-pix_fmt:v:1", "yuv420p", "-c:a", "aac", *flags)


def test_a_one_frame_still_before_the_video_is_never_taken_for_it_in_any_step(tmp_path):
    video = make_still_first(tmp_path / "still.mkv")
    assert ffmpeg.video_map(video) == "0:1"
    rec = convert.convert_video(video)
    assert rec["frames"].shape == (30, 120, 160, 5) and rec["source_frames"] == 30
    assert decode.decoded_frame_count(video) == 30
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy, = tmp_path.glob("resized_*")
    info = ffmpeg.probe(copy)
    assert not failed and (info.width, info.height) == (80, 60)
    assert ffmpeg.video_stream_length(copy, decode=True)[0] == 30


def test_of_several_real_video_streams_the_default_one_is_used(tmp_path):
    video = ffmpeg_make(tmp_path / "two.mkv", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=0.5",
                        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1",
                        "-map", "0:v", "-map", "1:v", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        "-disposition:v:0", "0", "-disposition:v:1", "default")
    assert convert.convert_video(video)["frames"].shape == (30, 120, 160, 5)


def test_cover_art_is_never_the_video(tmp_path):
    cover = ffmpeg_make(tmp_path / "cover.png", "-f", "lavfi", "-i", "color=c=red:s=64x48", "-frames:v", "1")
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    video = ffmpeg_make(tmp_path / "art.mp4", "-i", ffmpeg.input_arg(cover), "-i", ffmpeg.input_arg(clip),
                        "-map", "0:v", "-map", "1:v", "-map", "1:a", "-c", "copy", "-c:v:0", "png",
                        "-disposition:v:0", "attached_pic")
    assert convert.convert_video(video)["frames"].shape == (30, 120, 160, 5)
    # where a container lists the picture first, it is still never chosen
    listing = ("Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:x.mp4':\n"
               "  Duration: 00:00:01.00, start: 0.000000, bitrate: 100 kb/s\n"
               "  Stream #0:0[0x0]: Video: png, rgb24(pc), 64x48 [SAR 1:1 DAR 4:3], 90k tbr, 90k tbn (attached pic)\n"
               "  Stream #0:1[0x1](und): Video: h264 (High), yuv420p(progressive), 160x120, 30 fps, 30 tbr, "
               "15360 tbn (default)\n"
               "  Stream #0:2[0x2](und): Audio: aac (LC), 44100 Hz, mono, fltp, 69 kb/s (default)\n")
    assert ffmpeg.main_video_stream(ffmpeg.parse_stream_info(listing)).index == 1


# ----------------------------------------------------------------------------- sound and picture in step

def test_a_picture_that_starts_after_the_sound_hears_each_sound_on_its_own_frame(tmp_path):
    # the picture starts 0.7 s into the file: a click at 1.0 s is 0.3 s into the picture, frame 9
    video = ffmpeg_make(tmp_path / "late.mp4", "-itsoffset", "0.7", "-f", "lavfi",
                        "-i", "testsrc2=size=64x48:rate=30:duration=1.3",
                        "-f", "lavfi", "-i", f"aevalsrc={click(1.0)}:s=44100:d=2",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
    amp = amplitude(video)
    assert len(amp) == 39 and amp.argmax() == 9, amp


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_a_cut_made_by_stream_copy_keeps_each_click_on_its_flash(tmp_path, ext):
    # `-ss ... -c copy` starts the picture at a keyframe before the cut point and the sound at it
    flash = "drawbox=x=0:y=0:w=64:h=48:color=white:t=fill:enable='between(t,2,2.03)'"
    whole = ffmpeg_make(tmp_path / "whole.mp4", "-f", "lavfi", "-i", f"color=c=black:s=64x48:r=30:d=4,{flash}",
                        "-f", "lavfi", "-i", f"aevalsrc={click(2.0)}:s=44100:d=4", "-c:v", "libx264", "-g", "30",
                        "-bf", "2", "-preset", "fast", "-pix_fmt", "yuv420p", "-c:a", "aac")
    cut = ffmpeg_make(tmp_path / f"cut{ext}", "-ss", "1.3", "-i", ffmpeg.input_arg(whole), "-c", "copy")
    frames = convert.convert_video(cut)["frames"]
    assert int(frames[..., 3].float().mean(dim=(1, 2)).argmax()) == int(frames[..., 0].float().mean(dim=(1, 2)).argmax())


def test_the_sound_of_a_ten_minute_clip_at_23_976_fps_stays_on_its_frame():
    fps, fp = 24000 / 1001, 100
    sr = sound.analysis_rate(fp)  # 3000 Hz: 125.125 samples per frame, not a whole number
    n = int(600 * fps)
    target = n - 20  # a click in the middle of a frame near the end
    audio = np.zeros(int(601 * sr), np.float32)
    at = int(round((target + 0.5) / fps * sr))
    audio[at:at + 20] = np.sin(np.arange(20))
    amp = sound.fuse(np.zeros((n, 1, 1, 5), np.uint8), audio, fps=fps, audiomethod="simple",
                     frequency_param=fp)[:, 0, 0, 3]
    assert amp.argmax() == target


def test_a_click_in_a_29_97_fps_clip_lands_on_its_frame(tmp_path):
    fps = 30000 / 1001
    video = make_video(tmp_path / "ntsc.mp4", seconds=3, fps="30000/1001", audio=click(60.3 / fps, 0.01))
    rec = convert.convert_video(video)
    assert rec["fps"] == pytest.approx(fps) and rec["frames"][:, 0, 0, 3].argmax() == 60


# ----------------------------------------------------------------------------- memory

def watch_frame_arrays(monkeypatch):
    """The frame counts of every frame array decoding makes."""
    sizes = []
    new, take = framesinks.new_frame_array, memory.ScratchBuffer.take
    monkeypatch.setattr(framesinks, "new_frame_array", lambda shape: sizes.append(shape[0]) or new(shape))
    monkeypatch.setattr(memory.ScratchBuffer, "take", lambda self, shape: sizes.append(shape[0]) or take(self, shape))
    return sizes


@pytest.mark.parametrize("kind", ["mp4", "mkv_header_overcounts", "main_stream_second"])
def test_frames_n_holds_at_most_n_frames_and_is_the_stretched_full_clip_bit_for_bit(tmp_path, monkeypatch, kind):
    if kind == "main_stream_second":  # decoded through ffmpeg's pipe
        video = make_still_first(tmp_path / "v.mkv")
    else:  # an mkv's frame count is an estimate from its duration, here one frame too many
        video = make_video(tmp_path / ("v.mp4" if kind == "mp4" else "v.mkv"), seconds=1)
    full = convert.convert_video(video, audiomethod="mel")["frames"].numpy()
    want = timeline.stretch_time(full, 10, sound_channels=2, planes=1)  # mel: amplitude the one plane
    sizes = watch_frame_arrays(monkeypatch)
    rec = convert.convert_video(video, audiomethod="mel", frames=10, scratch=memory.ScratchBuffer())
    assert sizes and max(sizes) <= 10
    assert rec["source_frames"] == 30 and np.array_equal(rec["frames"].numpy(), want)


def test_a_video_larger_than_the_memory_is_refused_before_decoding_with_the_figure_and_the_way_out(
        tmp_path, monkeypatch):
    video = make_video(tmp_path / "big.mp4", seconds=1)  # 30 frames of 160x120x5 bytes: 2.9 MB
    monkeypatch.setattr(memory, "available_memory", lambda: 1_000_000)
    sizes = watch_frame_arrays(monkeypatch)
    with pytest.raises(memory.NotEnoughMemory) as refused:
        convert.convert_video(video)
    message = str(refused.value)
    assert "needs 2.7 MiB for 30 frames" in message and "only 1.0 MiB of memory is available" in message
    assert "--frames" in message and "--mag" in message
    assert not sizes  # refused before a frame was decoded
    assert convert.convert_video(video, frames=5)["frames"].shape[0] == 5  # 5 frames fit


# ----------------------------------------------------------------------------- stretched clips

def test_a_stretched_clip_holds_only_the_frequencies_the_sound_had(tmp_path):
    video = make_video(tmp_path / "sweep.mp4", seconds=2,
                       audio="if(lt(t\\,1)\\,0.5*sin(2*PI*200*t)\\,0.5*sin(2*PI*1200*t))")
    own = convert.convert_video(video)["frames"]
    had = set(own[:, 0, 0, 4].tolist())
    assert len(had) == 2  # 200 Hz, then 1200 Hz
    for stretched in (convert.convert_video(video, frames=180)["frames"],
                      torch.from_numpy(timeline.stretch_time(own.numpy(), 180, sound_channels=2))):
        assert set(stretched[:, 0, 0, 4].tolist()) == had
        assert set(stretched[:, 0, 0, 3].tolist()) <= set(own[:, 0, 0, 3].tolist())


def test_a_stretched_mel_clip_shows_only_mel_images_of_its_own_frames(tmp_path):
    video = make_video(tmp_path / "m.mp4", seconds=1, audio="0.5*sin(2*PI*(200+900*t)*t)")
    own = convert.convert_video(video, audiomethod="mel")["frames"][..., 4].numpy()
    stretched = convert.convert_video(video, audiomethod="mel", frames=70)["frames"][..., 4].numpy()
    for image in stretched:
        assert any(np.array_equal(image, o) for o in own)


# ----------------------------------------------------------------------------- long videos

def test_ffmpegs_time_limit_grows_with_the_videos_duration():
    assert ffmpeg.timeout_for(None) == ffmpeg.timeout_for(10) == ffmpeg.FFMPEG_TIMEOUT
    assert ffmpeg.timeout_for(3600) == 3600 * ffmpeg.TIMEOUT_PER_SECOND  # an hour's HD video: 20 h


def test_decoding_and_resizing_take_their_time_limit_from_the_videos_duration(tmp_path, monkeypatch):
    video = make_video(tmp_path / "a.mp4", seconds=2)
    seen = []
    limit = ffmpeg.timeout_for
    monkeypatch.setattr(ffmpeg, "timeout_for", lambda duration: seen.append(duration) or limit(duration))
    convert.convert_video(video)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert len(seen) >= 2 and all(d == pytest.approx(2.0, abs=0.1) for d in seen), seen


# ----------------------------------------------------------------------------- paths and labels

@pytest.mark.parametrize("name", ["a:b/x.mp4", "a:b.mp4"])
def test_a_name_with_a_colon_in_its_first_part_is_a_file_for_opencv_too(tmp_path, monkeypatch, name):
    make_video(tmp_path / name, seconds=1)
    monkeypatch.chdir(tmp_path)

    def slow_path(*args, **kwargs):
        raise AssertionError("OpenCV could not open it: it took the name for a protocol")

    monkeypatch.setattr(decoders, "ffmpeg_pass", slow_path)
    assert convert.convert_video(Path(name))["frames"].shape[0] == 30
    assert decode.decoded_frame_count(name) == 30


def test_a_name_that_is_not_utf8_converts_instead_of_crashing_the_decoder(tmp_path):
    import os

    video = make_video(tmp_path / "ok.mp4", seconds=1).rename(tmp_path / os.fsdecode(b"caf\xe9.mp4"))  # Latin-1
    done = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert done.returncode == 0 and "converted 1," in done.stdout, done.stderr
    assert load_pt(tmp_path / os.fsdecode(b"caf\xe9.mp4.pt"))["frames"].shape[0] == 30
    make_video(tmp_path / "long.mp4", seconds=2)  # the record is read back, memory-mapped, and stretched
    done = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert done.returncode == 0 and "converted 1, aligned 1," in done.stdout, done.stderr
    assert load_record(tmp_path / os.fsdecode(b"caf\xe9.mp4.pt"))[0].shape[0] == 60
    done = run_script("delete_allmp4.py", "--target", tmp_path, "--lose_frames_or_pixels")  # its record: stretched
    assert done.returncode == 0 and not video.exists(), done.stdout


def test_visualize_gives_a_stretched_record_the_times_of_its_video(tmp_path):
    pt = tmp_path / "s.mp4.pt"
    torch.save(pt_dict(torch.zeros(45, 4, 4, 5, dtype=torch.uint8), fps=30.0, source_frames=15), pt)
    _, _, _, seconds = visualize.load_fmrgb(pt)
    assert seconds[0] == 0 and seconds[-1] == pytest.approx(14 / 30)  # 15 frames at 30 fps, not 45
    assert visualize.visualize(pt)[0].is_file()


# ----------------------------------------------------------------------------- the channels, pinned

FPS, FP = 30, 100
SR = FPS * FP


def frames_of(*levels, freq=300.0):
    """A track of one FP-sample frame per level, each a tone at that amplitude."""
    t = np.arange(FP) / SR
    return np.concatenate([lv * np.sin(2 * np.pi * freq * t) for lv in levels]).astype(np.float32)


def fused(audio, n, method="simple", shape=(1, 1), fps=FPS):
    return sound.fuse(np.zeros((n, *shape, 5), np.uint8), audio, fps=fps, audiomethod=method, frequency_param=FP)


def test_amplitude_is_rms_so_a_frame_at_half_the_loudest_amplitude_is_128():
    assert fused(frames_of(1.0, 0.5), 2)[:, 0, 0, 3].tolist() == [255, 128]  # power would give 64


def test_the_silence_gate_sits_exactly_60_db_below_the_loudest_frame():
    freq = fused(frames_of(1.0, 1.02e-3, 0.98e-3), 3)[:, 0, 0, 4]
    assert freq[0] == freq[1] > 0 and freq[2] == 0


def test_a_mel_image_at_29_97_fps_shows_30_columns():
    fps = 30000 / 1001
    sr = sound.analysis_rate(FP)
    audio = np.zeros(3 * sr, np.float32)
    audio[3070:3090] = 1.0  # inside frame 30's samples; its window lingers in columns 31 and 32
    img = fused(audio, 90, "mel", (16, 30), fps)[..., 4]
    assert not img[29].any() and img[30][:, -1].any()
    assert img[61].any() and not img[62].any()  # lit from column 30 to 32, shown for 30 frames each


@pytest.mark.parametrize("method", ["simple", "mel"])
def test_realigning_after_a_frames_run_equals_a_fresh_conversion_bit_for_bit(tmp_path, method):
    for tree in ("realigned", "fresh"):
        make_video(tmp_path / tree / "long.mp4", seconds=1, audio="0.5*sin(2*PI*300*t)")
        make_video(tmp_path / tree / "short.mp4", seconds=0.5, audio="0.5*sin(2*PI*900*t)*t")
    convert.convert_tree(tmp_path / "realigned", audiomethod=method, frames=20, report=REPORT)
    convert.convert_tree(tmp_path / "realigned", audiomethod=method, report=REPORT)
    convert.convert_tree(tmp_path / "fresh", audiomethod=method, report=REPORT)
    for name in ("long.mp4.pt", "short.mp4.pt"):
        again, fresh = load_pt(tmp_path / "realigned" / name), load_pt(tmp_path / "fresh" / name)
        assert again["frames"].shape[0] == 30 and torch.equal(again["frames"], fresh["frames"]), name


@pytest.mark.parametrize("method", ["simple", "mel"])
def test_predict_on_a_video_sees_the_very_clip_of_its_pt(tmp_path, method):
    make_video(tmp_path / "long.mp4", seconds=1)
    short = make_video(tmp_path / "short.mp4", seconds=0.5, audio="0.5*sin(2*PI*700*t)*t")
    convert.convert_tree(tmp_path, audiomethod=method, report=REPORT)
    stored, meta = load_record(tmp_path / "short.mp4.pt")
    # what predict.py does with a video: convert it in memory with the training set's length
    clip = convert.convert_video(short, audiomethod=method, frames=stored.shape[0])["frames"]
    assert stored.shape[0] == 30 and torch.equal(clip, stored)
