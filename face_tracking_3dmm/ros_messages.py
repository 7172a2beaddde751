"""Serialized ROS messages without rclpy: header stamps read from CDR bytes, message classes and
.msg definitions looked up by type name ('pkg/msg/Name').

Importable without ROS (the evaluation reads bags with it); :func:`message_class` needs the
generated message packages only when called.
"""
from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

from face_tracking_3dmm import paths

FACE_PARAMS_TYPE = "face_tracking_3dmm/msg/FaceParams"
#: The tracker's per-image output (topic ``faces``).
FACE_PARAMS_ARRAY_TYPE = "face_tracking_3dmm/msg/FaceParamsArray"


def header_stamp_ns(cdr: bytes) -> int:
    """Stamp of a serialized message whose first field is a std_msgs/Header (CDR: 4-byte
    encapsulation, then int32 sec, uint32 nanosec), read without deserializing the image."""
    endian = "little" if cdr[1] == 1 else "big"
    sec = int.from_bytes(cdr[4:8], endian, signed=True)
    return sec * 1_000_000_000 + int.from_bytes(cdr[8:12], endian)


def message_class(type_name: str):
    """rclpy message class of 'pkg/msg/Name'."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


@functools.cache
def starts_with_header(type_name: str) -> bool:
    """Whether messages of this type carry a header (so :func:`header_stamp_ns` reads their stamp)."""
    cls = message_class(type_name)
    return hasattr(cls, "get_fields_and_field_types") and "header" in cls.get_fields_and_field_types()


def find_msg_file(type_name: str) -> Path | None:
    """The .msg definition of a custom type (installed share dir, else the source checkout)."""
    package, _, name = type_name.split("/")
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(package)) / "msg" / f"{name}.msg")
    except Exception:  # not installed as an ament package: fall back to the checkout
        pass
    candidates.append(paths.SOURCE_ROOT / "msg" / f"{name}.msg")
    return next((c for c in candidates if c.is_file()), None)


def nested_types(type_name: str) -> list[str]:
    """'pkg/msg/Name' and every message type its fields use, nested ones first (the order a
    typestore registers them in)."""
    found: list[str] = []

    def visit(name: str) -> None:
        fields = message_class(name).get_fields_and_field_types().values()
        for package, inner in re.findall(r"([a-z][a-z0-9_]*)/([A-Z][A-Za-z0-9]*)", " ".join(fields)):
            nested = f"{package}/msg/{inner}"
            if nested not in found:
                visit(nested)
        if name not in found:
            found.append(name)

    visit(type_name)
    return found
