"""Writing serialized ROS messages (CDR, as DDS carries them) field by field, without rclpy's
per-field conversion: ``Publisher.publish`` takes the bytes as they are (:mod:`.image_cdr`,
:mod:`.face_params_cdr`).

Layout rules (little-endian CDR, XCDR1, the form Fast DDS sends on x86 and ARM): the bytes start with
the encapsulation header ``00 01 00 00``; each primitive is aligned to its own size counted from the
end of that header (structs add no alignment of their own); a string is its uint32 length counting a
closing NUL, its bytes, the NUL; a sequence is its uint32 length and its items; a fixed-size array
is its items alone.
"""
from __future__ import annotations

import struct

#: Encapsulation header of little-endian CDR (XCDR1).
CDR_LE = b"\x00\x01\x00\x00"
ENCAPSULATION = len(CDR_LE)
U32 = struct.Struct("<I")


def padding(offset: int, alignment: int) -> int:
    """Bytes that bring ``offset`` (counted from the start of the bytes) to ``alignment``."""
    return -(offset - ENCAPSULATION) % alignment


def string_bytes(text: str) -> bytes:
    """A string field (4-aligned: its bytes do not depend on where it starts once aligned)."""
    encoded = text.encode("utf-8") + b"\x00"
    return U32.pack(len(encoded)) + encoded


class Writer:
    """Appends CDR fields, each after the padding its alignment needs; :meth:`bytes` joins them."""

    def __init__(self):
        self.parts, self.at = [CDR_LE], ENCAPSULATION

    def put(self, part, alignment: int) -> None:
        pad = padding(self.at, alignment)
        if pad:
            self.parts.append(b"\x00" * pad)
        self.parts.append(part)
        self.at += pad + len(part)

    def string(self, text: str) -> None:
        self.put(string_bytes(text), 4)

    def bytes(self) -> bytes:
        return b"".join(self.parts)
