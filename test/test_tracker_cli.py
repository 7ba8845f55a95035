"""fartrack-track: frames or a video in, one x,y,w,h line per frame out, optional annotated video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fartrack_ros.cli.track import main
from fartrack_ros.model import save_checkpoint
from tracker_helpers import (CKPT_PATH, MICRO_CONFIG, TRACE_PATH, moving_target_video,  # noqa: F401
                             one_torch_thread, random_model)

INIT = (20.0, 30.0, 32.0, 28.0)


def _write_folder(folder, frames_rgb):
    folder.mkdir()
    for i, frame in enumerate(frames_rgb):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def micro_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "micro.pth"
    save_checkpoint(random_model(MICRO_CONFIG), path)
    return path


def _read_boxes(path):
    return np.array([[float(v) for v in line.split(",")] for line in path.read_text().splitlines()])


@pytest.mark.slow
@pytest.mark.skipif(not TRACE_PATH.is_file(), reason="official fixtures are not beside the repo")
def test_official_memory_on_a_frame_folder_gives_the_official_boxes(tmp_path):
    trace = np.load(TRACE_PATH)
    folder = _write_folder(tmp_path / "frames", trace["frames"][:4])  # PNG is lossless
    out = tmp_path / "boxes.txt"
    code = main([str(folder), "--init", "70,86,80,68", "--weights", str(CKPT_PATH),
                 "--memory", "official", "--device", "cpu", "--out", str(out)])
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "70.0000,86.0000,80.0000,68.0000"
    assert all(len(v.split(".")[1]) == 4 for line in lines for v in line.split(","))
    np.testing.assert_allclose(_read_boxes(out), trace["pred_boxes"][:4], atol=1e-3, rtol=0)


def test_video_input_gives_a_line_per_frame_and_an_annotated_video(tmp_path, micro_weights):
    frames, _ = moving_target_video(6)
    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out, saved = tmp_path / "boxes.txt", tmp_path / "annotated.mp4"
    code = main([str(video), "--init", ",".join(map(str, INIT)), "--weights", str(micro_weights),
                 "--device", "cpu", "--out", str(out), "--save", str(saved)])
    assert code == 0
    boxes = _read_boxes(out)
    assert boxes.shape == (6, 4) and tuple(boxes[0]) == INIT
    assert _count_frames(saved) == 6


def _count_frames(video) -> int:
    capture = cv2.VideoCapture(str(video))
    written = 0
    while capture.read()[0]:
        written += 1
    return written


def test_an_unreadable_last_image_keeps_the_boxes_tracked_before_it(tmp_path, micro_weights, capsys):
    folder = _write_folder(tmp_path / "frames", moving_target_video(4)[0])
    (folder / "00003.png").write_bytes(b"not a png")
    out = tmp_path / "boxes.txt"

    code = main([str(folder), "--init", "20,30,32,28", "--weights", str(micro_weights), "--out", str(out)])

    assert code == 1
    assert _read_boxes(out).shape == (3, 4)
    assert (f"fartrack-track: error: cannot read image {folder / '00003.png'} (the boxes of the 3 frames before "
            "it are written)") in capsys.readouterr().err


def test_ctrl_c_keeps_the_boxes_tracked_before_it(tmp_path, micro_weights, monkeypatch, capsys):
    from fartrack_ros.tracker import Tracker

    folder = _write_folder(tmp_path / "frames", moving_target_video(6)[0])
    out = tmp_path / "boxes.txt"
    track = Tracker.track
    calls = []

    def interrupted_at_the_third_frame(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return track(self, *args, **kwargs)

    monkeypatch.setattr(Tracker, "track", interrupted_at_the_third_frame)
    code = main([str(folder), "--init", "20,30,32,28", "--weights", str(micro_weights), "--out", str(out)])

    assert code == 130
    assert _read_boxes(out).shape == (3, 4)  # the init and the two frames tracked
    err = capsys.readouterr().err
    assert "the boxes of the 3 frames tracked so far are written" in err
    assert err.rstrip().endswith("fartrack-track: stopped by Ctrl-C") and "Traceback" not in err


def test_a_frame_of_another_size_is_resized_into_the_saved_video_with_one_warning(tmp_path, micro_weights, capsys):
    frames = moving_target_video(4)[0]
    frames[2] = cv2.resize(frames[2], (200, 150))
    frames[3] = cv2.resize(frames[3], (100, 80))
    folder = _write_folder(tmp_path / "frames", frames)
    saved = tmp_path / "annotated.mp4"

    code = main([str(folder), "--init", "20,30,32,28", "--weights", str(micro_weights), "--save", str(saved)])

    assert code == 0
    assert _count_frames(saved) == 4
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [f"fartrack-track: warning: 2 frame(s) from frame 2 on differ in size from the first "
                        f"(160x120): resized in {saved} (the boxes are for the frames as read)"]


def test_the_cuda_fallback_warning_carries_the_tool_name(tmp_path, micro_weights, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    folder = _write_folder(tmp_path / "frames", moving_target_video(2)[0])

    assert main([str(folder), "--init", "20,30,32,28", "--weights", str(micro_weights), "--device", "cuda"]) == 0
    assert ("fartrack-track: warning: device 'cuda' requested but no CUDA device is available: running on CPU\n"
            in capsys.readouterr().err)


def test_boxes_go_to_stdout_without_out(tmp_path, micro_weights, capsys):
    folder = _write_folder(tmp_path / "frames", moving_target_video(3)[0])
    assert main([str(folder), "--init", "20,30,32,28", "--weights", str(micro_weights), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0] == "20.0000,30.0000,32.0000,28.0000"


def test_a_folder_as_out_is_refused_before_tracking(tmp_path, micro_weights, capsys):
    folder = _write_folder(tmp_path / "frames", moving_target_video(3)[0])
    assert main([str(folder), "--init", "20,30,32,28", "--weights", str(micro_weights), "--out", str(tmp_path)]) == 1
    assert f"{tmp_path} is a folder" in capsys.readouterr().err


def test_missing_input_is_reported_with_its_path(tmp_path, micro_weights, capsys):
    code = main([str(tmp_path / "nope.mp4"), "--init", "1,2,3,4", "--weights", str(micro_weights)])
    assert code == 1
    assert "input not found" in capsys.readouterr().err


def test_missing_weights_are_reported_with_their_path(tmp_path, capsys):
    folder = _write_folder(tmp_path / "frames", moving_target_video(2)[0])
    code = main([str(folder), "--init", "20,30,32,28", "--weights", str(tmp_path / "none.pth")])
    assert code == 1
    assert "weights file not found" in capsys.readouterr().err


@pytest.mark.parametrize("init", ["1,2,3", "1,2,0,4", "a,b,c,d", "1,2,nan,4"])
def test_malformed_init_box_is_a_usage_error(tmp_path, init):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--init", init])
    assert exc.value.code == 2
