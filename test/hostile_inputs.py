"""Inputs made to break readers: decompression bombs (headers claiming huge images)."""
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
