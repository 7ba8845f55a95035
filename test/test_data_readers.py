"""GOT-10k and LaSOT layouts: a generated sequence written in either layout reads back the same."""

import numpy as np
import pytest

from fartrack_ros.data.got10k import load_got10k, write_got10k
from fartrack_ros.data.lasot import load_lasot, write_lasot
from fartrack_ros.data.readers import detect_layout, load_dataset
from fartrack_ros.data.sequence import TrackingSequence, cover_level
from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence

JPEG_TOLERANCE = 4.0  # mean absolute difference per pixel after JPEG at quality 95


@pytest.fixture(scope="module")
def sequences():
    """Two short generated sequences, the second with hand-set occlusion/out-of-view flags."""
    config = SyntheticConfig(min_length=8, max_length=8)
    first, second = generate_sequence(21, config), generate_sequence(22, config)
    second.full_occlusion[3] = True
    second.out_of_view[5:7] = True
    second.absent[3] = second.absent[5] = second.absent[6] = True
    second.visible_ratio[[3, 5, 6]] = 0.0
    second.visible_ratio[4] = 0.5
    second.boxes[5:7] = 0.0
    return [first, second]


def assert_same(read: TrackingSequence, written: TrackingSequence):
    assert len(read) == len(written)
    np.testing.assert_allclose(read.boxes, written.boxes, atol=1e-4)
    assert np.array_equal(read.absent, written.absent)
    for index in (0, len(read) - 1):
        frame = read.frame(index)
        assert frame.shape == written.frame(index).shape and frame.dtype == np.uint8
        assert np.abs(frame.astype(int) - written.frame(index).astype(int)).mean() < JPEG_TOLERANCE


@pytest.mark.parametrize("img_subfolder", [False, True])
def test_got10k_round_trip_in_both_frame_layouts(tmp_path, sequences, img_subfolder):
    for sequence in sequences:
        write_got10k(sequence, tmp_path, img_subfolder=img_subfolder)
    assert (tmp_path / sequences[0].name / ("img" if img_subfolder else "") / "00000001.jpg").is_file()
    read = load_dataset(tmp_path)
    assert [s.name for s in read] == [s.name for s in sequences]
    for r, w in zip(read, sequences):
        assert_same(r, w)
    assert np.array_equal(cover_level(read[1].visible_ratio), sequences[1].cover)


def test_got10k_files_have_one_line_per_frame(tmp_path, sequences):
    folder = write_got10k(sequences[1], tmp_path)
    for name in ("groundtruth.txt", "absence.label", "cover.label", "cut_by_image.label"):
        assert len((folder / name).read_text().splitlines()) == len(sequences[1])
    assert (folder / "absence.label").read_text().split()[3] == "1"
    assert "resolution: (320, 240)" in (folder / "meta_info.ini").read_text()
    assert (tmp_path / "list.txt").read_text().split() == [sequences[1].name]


def test_lasot_round_trip_keeps_occlusion_and_out_of_view_flags(tmp_path, sequences):
    for index, sequence in enumerate(sequences, start=1):
        write_lasot(sequence, tmp_path, class_name="blob", index=index)
    assert (tmp_path / "blob" / "blob-2" / "img" / "00000008.jpg").is_file()
    assert detect_layout(tmp_path) == "lasot"
    read = load_lasot(tmp_path)
    assert [s.name for s in read] == ["blob-1", "blob-2"]
    for r, w in zip(read, sequences):
        assert_same(r, w)
        assert np.array_equal(r.full_occlusion, w.full_occlusion)
        assert np.array_equal(r.out_of_view, w.out_of_view)


def test_lasot_sequences_sort_by_number_not_text(tmp_path, sequences):
    for index in (2, 10):
        write_lasot(sequences[0], tmp_path, class_name="cup", index=index)
    assert [s.name for s in load_lasot(tmp_path)] == ["cup-2", "cup-10"]


def test_got10k_test_split_with_only_the_first_box_marks_later_frames_absent(tmp_path, sequences):
    folder = write_got10k(sequences[0], tmp_path)
    first_line = (folder / "groundtruth.txt").read_text().splitlines()[0]
    (folder / "groundtruth.txt").write_text(first_line + "\n")
    for name in ("absence.label", "cover.label"):
        (folder / name).unlink()
    (read,) = load_got10k(tmp_path)
    assert not read.absent[0] and read.absent[1:].all()
    assert read.attributes["annotated_frames"] == 1


def test_got10k_groundtruth_shorter_than_the_frames_is_an_error_outside_a_test_split(tmp_path, sequences):
    folder = write_got10k(sequences[0], tmp_path)
    lines = (folder / "groundtruth.txt").read_text().splitlines()
    (folder / "groundtruth.txt").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(ValueError, match=f"has 3 boxes for {len(lines)} frames"):
        load_got10k(tmp_path)


def test_a_gap_in_the_frame_numbers_is_an_error_naming_the_missing_frame(tmp_path, sequences):
    folder = write_got10k(sequences[0], tmp_path)
    (folder / "00000002.jpg").unlink()
    with pytest.raises(ValueError, match="frame 2 is missing .* found 00000003.jpg next"):
        load_got10k(tmp_path)


def test_frames_load_lazily_from_paths(tmp_path, sequences):
    write_got10k(sequences[0], tmp_path)
    (read,) = load_dataset(tmp_path, layout="got10k")
    assert read.frames is None and len(read.frame_paths) == len(sequences[0])


def test_detect_layout_points_at_a_split_when_given_the_got10k_root(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
    with pytest.raises(ValueError, match="point at one split"):
        detect_layout(tmp_path)


def test_a_lasot_class_folder_given_as_the_root_points_at_the_root(tmp_path, sequences):
    """Read as a GOT-10k split, its sequences would lose their full-occlusion flags."""
    write_lasot(sequences[0], tmp_path, class_name="drone", index=1)
    with pytest.raises(ValueError, match=f"is a LaSOT class folder \\(it holds drone-1\\): give the LaSOT root, "
                                         f"{tmp_path}"):
        detect_layout(tmp_path / "drone")
    assert detect_layout(tmp_path) == "lasot"


def test_unknown_layout_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'otb'"):
        load_dataset(tmp_path, layout="otb")


@pytest.mark.parametrize("file,line,text", [("groundtruth.txt", 2, "3O,30,30,24"), ("absence.label", 3, "x"),
                                            ("cover.label", 1, "nan")])
def test_a_value_that_is_not_a_number_is_an_error_naming_its_file_and_line(tmp_path, sequences, file, line, text):
    folder = write_got10k(sequences[0], tmp_path)
    lines = (folder / file).read_text().splitlines()
    lines[line - 1] = text
    (folder / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{folder / file}:{line}: "):
        load_got10k(tmp_path)


def test_a_sequence_folder_with_ground_truth_and_no_frames_is_an_error_not_skipped(tmp_path, sequences):
    write_got10k(sequences[0], tmp_path / "got10k")
    (tmp_path / "got10k" / "list.txt").unlink()
    empty = tmp_path / "got10k" / "not_copied_yet"
    empty.mkdir()
    (empty / "groundtruth.txt").write_text("1,2,3,4\n")
    with pytest.raises(FileNotFoundError, match=f"no numbered frames .* in {empty}"):
        load_got10k(tmp_path / "got10k")

    write_lasot(sequences[0], tmp_path / "lasot", class_name="cup", index=1)
    (tmp_path / "lasot" / "cup" / "cup-2").mkdir()
    (tmp_path / "lasot" / "cup" / "cup-2" / "groundtruth.txt").write_text("1,2,3,4\n")
    with pytest.raises(FileNotFoundError, match="no numbered frames .* in .*cup-2"):
        load_lasot(tmp_path / "lasot")
