"""Frame sources: a real talking clip, images and folders, rosbag2 files (mcap and sqlite3) written
from the clip, and the errors for what cannot be read."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from made_inputs import png_bomb, write_bag
from ros_helpers import talking_clip

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io import sources
from face_tracking_3dmm.io import bags


@pytest.mark.slow
def test_video_source_knows_its_rate_and_times_frames():
    with sources.open_source(talking_clip()) as source:
        assert isinstance(source, sources.VideoSource) and source.fps == pytest.approx(25.0)
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 3:
                break
    assert [f.index for f in frames] == [0, 1, 2] and frames[0].source == "d0.mp4"
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.ndim == 3 and frames[0].rgb.shape[2] == 3
    np.testing.assert_allclose([f.timestamp_s for f in frames], [0.0, 0.04, 0.08], atol=1e-6)


def test_video_source_resizes_to_a_width_keeping_the_aspect_ratio():
    with sources.VideoSource(talking_clip()) as full, sources.VideoSource(talking_clip(), width=321) as small:
        assert small.frame_count == full.frame_count > 3
        assert small.width == 321 and small.height == int(round(full.height * 321 / full.width / 2)) * 2
        frame = next(iter(small))
    assert frame.rgb.shape == (small.height, 321, 3) and frame.timestamp_s == 0.0


def test_image_and_folder_sources(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for name, colour in zip(["b.png", "a.png", "c.jpg"], colours):
        PILImage.new("RGB", (8, 6), colour).save(folder / name)
    (folder / "notes.txt").write_text("not an image")

    with sources.open_source(folder) as source:
        assert isinstance(source, sources.FolderSource) and source.fps is None
        frames = list(source)
    assert [f.source for f in frames] == ["a.png", "b.png", "c.jpg"]
    assert tuple(frames[0].rgb[0, 0]) == (0, 255, 0) and frames[1].rgb.shape == (6, 8, 3)
    assert frames[2].timestamp_s == pytest.approx(2 / 30)

    single = list(sources.open_source(folder / "b.png"))
    assert len(single) == 1 and tuple(single[0].rgb[0, 0]) == (255, 0, 0)


def test_folders_read_what_pillow_reads_and_name_what_they_skip(tmp_path):
    PILImage.new("RGB", (8, 6), (10, 20, 30)).save(tmp_path / "frame.ppm")
    PILImage.new("L", (8, 6), 99).save(tmp_path / "frame.pgm")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").write_text("")
    with pytest.warns(sources.SourceWarning, match=r"1 file\(s\) skipped, not images: notes.txt"):
        source = sources.open_source(tmp_path)
    assert [f.source for f in source] == ["frame.pgm", "frame.ppm"] and source.skipped == ["notes.txt"]
    assert sources.source_kind(tmp_path / "frame.ppm") == "image" and ".ppm" in sources.image_suffixes()


def test_an_image_file_too_large_is_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_bomb(32768, 32768))
    with pytest.raises(sources.SourceError, match="image too large"):
        list(sources.open_source(tmp_path / "bomb.png"))


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_source_reads_images_and_camera_info(tmp_path, storage):
    with sources.VideoSource(talking_clip()) as video:
        height = int(round(video.height * 320 / video.width / 2)) * 2
    camera = CameraIntrinsics(400.0, 400.0, 160.0, height / 2, 320, height)
    bag = tmp_path / "bag"
    bags.video_to_bag(talking_clip(), bag, max_frames=4, width=320, camera=camera, start_time_ns=10**18,
                       storage=storage, progress=False)
    with sources.open_source(bag) as source:
        assert isinstance(source, sources.BagSource) and source.fps == pytest.approx(25.0)
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3] and frames[0].rgb.shape == (height, 320, 3)
    assert frames[3].timestamp_s == pytest.approx(0.12) and frames[0].camera == camera

    first_video_frame = next(iter(sources.VideoSource(talking_clip()))).rgb
    import av  # the bag holds the clip resized to 320 wide: compare with the same resize
    resized = av.VideoFrame.from_ndarray(first_video_frame, format="rgb24").reformat(width=320, height=height)
    assert np.abs(frames[0].rgb.astype(int) - resized.to_ndarray(format="rgb24")).mean() < 2


def test_bag_with_an_unsupported_image_names_it(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = bags.typestore()
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c")
    depth = types["sensor_msgs/msg/Image"](header=header, height=2, width=2, encoding="16UC1", is_bigendian=0,
                                           step=4, data=np.zeros(8, np.uint8))
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/depth", "sensor_msgs/msg/Image", typestore=store)
        writer.write(connection, 1, store.serialize_cdr(depth, "sensor_msgs/msg/Image"))
    with pytest.raises(sources.SourceError, match="image 0 on /depth: unsupported encoding '16UC1'"):
        list(sources.open_source(tmp_path / "bag"))


def test_unreadable_sources_say_why(tmp_path):
    with pytest.raises(sources.SourceError, match="source not found"):
        sources.open_source(tmp_path / "missing.mp4")
    (tmp_path / "table.csv").write_text("a,b")
    with pytest.raises(sources.SourceError, match="expected a video"):
        sources.open_source(tmp_path / "table.csv")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(sources.SourceError, match="cannot open video"):
        sources.open_source(tmp_path / "broken.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(sources.SourceError, match="holds no images"):
        sources.open_source(tmp_path / "empty")
    with pytest.raises(sources.SourceError, match="cannot open camera device"):
        sources.open_source("/dev/video99")


def bag_frames(bag, topic=None):
    with sources.open_source(bag, topic) as source:
        return list(source)


def test_a_bag_with_two_image_topics_needs_a_choice(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag, ("/camera/color/image_raw", "/camera/depth/image_raw"))
    with pytest.raises(sources.SourceError, match="several image topics .*/camera/color/image_raw, "
                                                  "/camera/depth/image_raw.*--image-topic"):
        sources.open_source(bag)
    frames = bag_frames(bag, "/camera/depth/image_raw")
    assert len(frames) == 3 and all(f.rgb[0, 0, 0] == 80 for f in frames)
    with pytest.raises(sources.SourceError, match="no sensor_msgs/msg/Image topic /nope"):
        sources.open_source(bag, "/nope")


def test_the_default_topic_is_taken_among_several_and_each_camera_keeps_its_camera_info(tmp_path):
    bag = tmp_path / "bag"
    wide, narrow = CameraIntrinsics(20.0, 20.0, 16.0, 12.0, 32, 24), CameraIntrinsics(90.0, 90.0, 16.0, 12.0, 32, 24)
    write_bag(bag, (bags.DEFAULT_IMAGE_TOPIC, "/other/image_raw"),
              {"/other/camera_info": narrow, bags.DEFAULT_INFO_TOPIC: wide})
    frames = bag_frames(bag)
    assert all(f.rgb[0, 0, 0] == 40 and f.camera == wide for f in frames)
    assert all(f.camera == narrow for f in bag_frames(bag, "/other/image_raw"))


def test_bag_camera_info_is_checked_and_scaled_as_the_node_does(tmp_path):
    unset, doubled = tmp_path / "unset", tmp_path / "doubled"
    write_bag(unset, info_topics={bags.DEFAULT_INFO_TOPIC: CameraIntrinsics(0.0, 0.0, 0.0, 0.0, 32, 24)})
    with pytest.warns(sources.SourceWarning, match="no valid K"):
        frames = bag_frames(unset)
    assert all(f.camera == CameraIntrinsics.default_for(32, 24) for f in frames)
    write_bag(doubled, info_topics={bags.DEFAULT_INFO_TOPIC: CameraIntrinsics(60.0, 60.0, 32.0, 24.0, 64, 48)})
    with pytest.warns(sources.SourceWarning, match="K scaled"):
        frames = bag_frames(doubled)
    assert frames[0].camera == CameraIntrinsics(30.0, 30.0, 16.0, 12.0, 32, 24)


def test_a_corrupt_bag_is_a_clear_error(tmp_path):
    bag = tmp_path / "bag"
    write_bag(bag)
    (mcap,) = bag.glob("*.mcap")
    mcap.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 4)
    with pytest.raises(sources.SourceError, match="cannot open bag"):
        sources.open_source(bag)
