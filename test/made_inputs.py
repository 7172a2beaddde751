"""Inputs made for the reader tests: decompression bombs (headers claiming huge images) and small
synthetic rosbag2 files with chosen topics and CameraInfo."""
from __future__ import annotations

import numpy as np


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` grey pixels, with the first rows of zeros compressed
    (a real bomb holds all of them in ~1/1000 of their size; the header is what must refuse it)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(16 * (width + 1)), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def jpeg_bomb(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is rewritten to say ``width`` x ``height``."""
    import cv2

    data = bytearray(cv2.imencode(".jpg", np.full((24, 32, 3), 128, np.uint8))[1].tobytes())
    at = data.index(b"\xff\xc0") + 5
    data[at:at + 4] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def write_bag(path, image_topics=("/camera/image_raw",), info_topics=None, frames: int = 3, width: int = 32,
              height: int = 24) -> None:
    """An mcap bag of ``frames`` flat rgb8 images on each of ``image_topics`` (topic i has value 40 * (i + 1))
    and a CameraInfo per frame on each of ``info_topics`` (topic -> CameraIntrinsics, 0.1 ms after the image)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from face_tracking_3dmm.io import bags

    store = bags.typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        images = [writer.add_connection(t, bags.IMAGE_TYPE, typestore=store) for t in image_topics]
        infos = [(writer.add_connection(t, bags.CAMERA_INFO_TYPE, typestore=store), camera)
                 for t, camera in (info_topics or {}).items()]
        for frame in range(frames):
            stamp = 10**9 + frame * 33_000_000
            for index, connection in enumerate(images):
                rgb = np.full((height, width, 3), 40 * (index + 1), np.uint8)
                writer.write(connection, stamp, store.serialize_cdr(
                    bags.image_message(store, rgb, "camera", stamp), bags.IMAGE_TYPE))
            for connection, camera in infos:
                writer.write(connection, stamp + 100_000, store.serialize_cdr(
                    bags.camera_info_message(store, camera, "camera", stamp), bags.CAMERA_INFO_TYPE))
