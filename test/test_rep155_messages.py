"""The hri_msgs types the tracker publishes have the RIHS01 type hashes of the pinned hri_msgs 2.3.2
release (ROS 2 Jazzy's), so they talk to real ROS4HRI nodes.

No published RIHS01 value of any hri_msgs type could be found (searched: code, docs, issues), so the
expected hashes come from an independent implementation of REP-2011's hashing (below: the type
description of each field list as canonical JSON, SHA-256), applied to the field lists of the
release's .msg files as transcribed here. The implementation is checked first against a published
value, tf2_msgs/TFMessage's Jazzy hash; then the package in use (the one set-up built, or a ROS 2
install's) must have the same hashes, and they are pinned.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

#: Field lists (type, name) in declaration order; constants and default values are not hashed.
DEFINITIONS = {
    "builtin_interfaces/msg/Time": [("int32", "sec"), ("uint32", "nanosec")],
    "std_msgs/msg/Header": [("builtin_interfaces/msg/Time", "stamp"), ("string", "frame_id")],
    "geometry_msgs/msg/Vector3": [("float64", "x"), ("float64", "y"), ("float64", "z")],
    "geometry_msgs/msg/Quaternion": [("float64", "x"), ("float64", "y"), ("float64", "z"), ("float64", "w")],
    "geometry_msgs/msg/Transform": [("geometry_msgs/msg/Vector3", "translation"),
                                    ("geometry_msgs/msg/Quaternion", "rotation")],
    "geometry_msgs/msg/TransformStamped": [("std_msgs/msg/Header", "header"), ("string", "child_frame_id"),
                                           ("geometry_msgs/msg/Transform", "transform")],
    "tf2_msgs/msg/TFMessage": [("geometry_msgs/msg/TransformStamped[]", "transforms")],
    # hri_msgs 2.3.2 (ros4hri/hri_msgs, Apache-2.0), the release ROS 2 Jazzy ships:
    "hri_msgs/msg/IdsList": [("std_msgs/msg/Header", "header"), ("string[]", "ids")],
    "hri_msgs/msg/NormalizedPointOfInterest2D": [("float32", "x"), ("float32", "y"), ("float32", "c")],
    "hri_msgs/msg/NormalizedRegionOfInterest2D": [("std_msgs/msg/Header", "header"), ("float32", "xmin"),
                                                  ("float32", "ymin"), ("float32", "xmax"), ("float32", "ymax"),
                                                  ("float32", "c")],
    "hri_msgs/msg/FacialLandmarks": [("std_msgs/msg/Header", "header"),
                                     ("hri_msgs/msg/NormalizedPointOfInterest2D[70]", "landmarks"),
                                     ("uint32", "height"), ("uint32", "width")],
    "hri_msgs/msg/FacialActionUnits": [("std_msgs/msg/Header", "header"), ("float32[99]", "intensity"),
                                       ("float32[99]", "confidence")],
    "hri_msgs/msg/Expression": [("std_msgs/msg/Header", "header"), ("string", "expression"),
                                ("float32", "valence"), ("float32", "arousal"), ("float32", "confidence")],
}
#: type_description_interfaces/FieldType ids (REP-2011); arrays add 48, unbounded sequences 144.
FIELD_TYPE_IDS = {"int8": 2, "uint8": 3, "int16": 4, "uint16": 5, "int32": 6, "uint32": 7, "int64": 8,
                  "uint64": 9, "float32": 10, "float64": 11, "char": 13, "bool": 15, "byte": 16, "string": 17}
NESTED, ARRAY, SEQUENCE = 1, 48, 144
#: The only RIHS01 value found published: tf2_msgs/msg/TFMessage in ROS 2 Jazzy.
TF_MESSAGE_JAZZY = "RIHS01_e369d0f05a23ae52"
#: hri_msgs 2.3.2, by the implementation below (pinned: a changed definition fails here).
HRI_MSGS_HASHES = {
    "IdsList": "RIHS01_7e0812d1ac945c98fd3e393568d581ad0ab567f37b24eff633eab778c1bfe62d",
    "NormalizedPointOfInterest2D": "RIHS01_cc1d2f720c82afeb850ff1dbf66f41ecb7caf19f842987f1247e66160cf03953",
    "NormalizedRegionOfInterest2D": "RIHS01_2e50c93f1ca166ee77af9a5424dc951ae4e452b740162a7f83c082d917dcaff5",
    "FacialLandmarks": "RIHS01_f1d6b0ba159f4d6be1632e5dfc9cb79ce5e35da73888da2a4789bd9b35112a63",
    "FacialActionUnits": "RIHS01_43f431104624b6ff7f84350f1faa3747efc8a9330dee942b717a08830a267ed3",
    "Expression": "RIHS01_411b88e0604397d44775d8ec6a4bc69398fb0dfbfe864c33a40fa99ee85f1b00",
}


def field_description(type_text: str, name: str) -> dict:
    """One field as REP-2011's type description writes it (keys in its order)."""
    base, size = re.fullmatch(r"([\w/]+)(?:\[(\d*)\])?", type_text).group(1, 2)
    type_id = FIELD_TYPE_IDS.get(base, NESTED)
    if size is not None:
        type_id += ARRAY if size else SEQUENCE
    return {"name": name, "type": {"type_id": type_id, "capacity": int(size or 0), "string_capacity": 0,
                                   "nested_type_name": "" if base in FIELD_TYPE_IDS else base}}


def nested_types(type_name: str) -> set[str]:
    found = set()
    for type_text, _ in DEFINITIONS[type_name]:
        base = type_text.split("[")[0]
        if base not in FIELD_TYPE_IDS:
            found |= {base} | nested_types(base)
    return found


def rihs01(type_name: str) -> str:
    """RIHS01 hash: SHA-256 of the JSON of the type's description and of every type it refers to
    (sorted by name), without default values, separators ', ' and ': '."""
    def description(name: str) -> dict:
        return {"type_name": name, "fields": [field_description(t, n) for t, n in DEFINITIONS[name]]}

    hashable = {"type_description": description(type_name),
                "referenced_type_descriptions": [description(name) for name in sorted(nested_types(type_name))]}
    text = json.dumps(hashable, separators=(", ", ": "), ensure_ascii=True)
    return "RIHS01_" + hashlib.sha256(text.encode()).hexdigest()


def installed_hashes(package: str) -> dict[str, str]:
    """Type hashes of ``package`` as built: rosidl writes them to <prefix>/share/<package>/msg/*.json,
    beside <prefix>/lib/pythonX.Y/site-packages/<package> (set-up's venv and a ROS 2 install alike)."""
    module = pytest.importorskip(package)
    share = Path(module.__file__).resolve().parents[4] / "share" / package / "msg"
    if not share.is_dir():
        pytest.skip(f"no {share}: {package} is not installed as rosidl installs it")
    return {entry["type_name"]: entry["hash_string"] for path in share.glob("*.json")
            for entry in json.loads(path.read_text())["type_hashes"]}


def test_the_hashing_reproduces_a_published_hash():
    assert rihs01("tf2_msgs/msg/TFMessage").startswith(TF_MESSAGE_JAZZY)


def test_the_release_definitions_hash_to_the_pinned_values():
    assert {name: rihs01(f"hri_msgs/msg/{name}") for name in HRI_MSGS_HASHES} == HRI_MSGS_HASHES


def test_the_hri_msgs_in_use_have_the_release_hashes():
    hashes = installed_hashes("hri_msgs")
    assert {name: hashes[f"hri_msgs/msg/{name}"] for name in HRI_MSGS_HASHES} == HRI_MSGS_HASHES


def test_the_built_package_names_its_release_and_licence():
    import importlib.util

    spec = importlib.util.spec_from_file_location("setup_env", Path(__file__).parent.parent / "scripts" / "setup_env.py")
    setup_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_env)
    package_xml = setup_env.HRI_MSGS_FILES["package.xml"]
    assert f"<version>{setup_env.HRI_MSGS_RELEASE}</version>" in package_xml and "2.3.2" in package_xml
    assert "<license>Apache-2.0</license>" in package_xml
    assert sorted(setup_env.HRI_MSGS_TYPES) == sorted(HRI_MSGS_HASHES)
