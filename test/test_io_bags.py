"""video-to-bag on a real clip, reading bags back, and truncated bags (no ROS context needed)."""
import os

import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.io import bags

CLIP = paths.eval_data_dir() / "talking_faces" / "d0.mp4" if paths.eval_data_dir() else None
needs_clip = pytest.mark.skipif(CLIP is None or not CLIP.is_file(), reason="shared talking clips not present")


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp("bags") / "d0"
    summary = bags.video_to_bag(CLIP, bag, max_frames=12, width=256, start_time_ns=5_000_000_000,
                                 progress=False)
    return bag, summary


@needs_clip
@pytest.mark.slow
def test_video_to_bag_writes_images_and_camera_info_at_the_video_rate(small_bag):
    bag, summary = small_bag
    assert summary["frames"] == 12 and summary["width"] == 256
    topics = bags.bag_topics(bag)
    assert topics[bags.DEFAULT_IMAGE_TOPIC] == {"type": bags.IMAGE_TYPE, "count": 12}
    assert topics[bags.DEFAULT_INFO_TOPIC] == {"type": bags.CAMERA_INFO_TYPE, "count": 12}
    store = bags.typestore()
    messages = list(bags.iter_messages(bag))
    images = [store.deserialize_cdr(m.rawdata, m.msgtype) for m in messages if m.msgtype == bags.IMAGE_TYPE]
    infos = [store.deserialize_cdr(m.rawdata, m.msgtype) for m in messages
             if m.msgtype == bags.CAMERA_INFO_TYPE]
    stamps = np.array([i.header.stamp.sec * 10**9 + i.header.stamp.nanosec for i in images])
    assert stamps[0] == 5_000_000_000
    np.testing.assert_allclose(np.diff(stamps) / 1e9, 1.0 / summary["fps"], atol=1e-3)
    assert [i.header.stamp for i in infos] == [i.header.stamp for i in images]
    image, info = images[0], infos[0]
    assert (image.encoding, image.width, image.step) == ("rgb8", 256, 256 * 3)
    assert image.header.frame_id == info.header.frame_id == bags.DEFAULT_FRAME_ID
    assert info.k[0] > 0 and info.k[2] == pytest.approx(128.0) and info.p[10] == 1.0
    pixels = np.asarray(image.data).reshape(image.height, image.width, 3)
    assert pixels.std() > 10  # a real picture, not a blank frame


@needs_clip
@pytest.mark.slow
def test_streaming_reader_matches_rosbags(small_bag):
    bag, _ = small_bag
    normal = [(m.topic, m.timestamp_ns, m.rawdata) for m in bags.iter_messages(bag)]
    streamed = [(m.topic, m.timestamp_ns, m.rawdata)
                for m in bags._stream_mcap_files(sorted(bag.glob("*.mcap")), None, "test")]
    assert streamed == normal


@needs_clip
@pytest.mark.slow
def test_truncated_bag_yields_what_it_has_then_a_clear_error(small_bag, tmp_path):
    bag, _ = small_bag
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in bag.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (mcap,) = broken.glob("*.mcap")
    os.truncate(mcap, mcap.stat().st_size * 2 // 3)
    received = []
    with pytest.raises(bags.BagError, match="truncated or corrupt after"):
        for message in bags.iter_messages(broken):
            received.append(message)
    assert 0 < len(received) < 24


def test_missing_bag_is_a_clear_error(tmp_path):
    with pytest.raises(bags.BagError, match="not found"):
        list(bags.iter_messages(tmp_path / "nope"))


@needs_clip
@pytest.mark.slow
def test_sqlite3_bags_too(tmp_path):
    bags.video_to_bag(CLIP, tmp_path / "sq", max_frames=3, width=96, storage="sqlite3", progress=False)
    assert list((tmp_path / "sq").glob("*.db3"))
    assert [m.msgtype for m in bags.iter_messages(tmp_path / "sq")].count(bags.IMAGE_TYPE) == 3


def test_streaming_reader_refuses_records_and_chunks_beyond_its_limit(tmp_path, monkeypatch):
    from made_inputs import write_bag

    write_bag(tmp_path / "bag", frames=2)
    files = sorted((tmp_path / "bag").glob("*.mcap"))
    assert len(list(bags._stream_mcap_files(files, None, "test"))) == 2
    monkeypatch.setattr(bags, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(bags.BagError, match="limit|more than 1000"):
        list(bags._stream_mcap_files(files, None, "test"))
