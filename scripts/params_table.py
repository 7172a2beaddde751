#!/usr/bin/env python3
"""Print the README's parameter table from TrackerConfig (names, defaults, ranges, descriptions).

test/test_readme.py fails when the README's copy is out of date: paste this script's output there.
"""
import dataclasses

from face_tracking_3dmm.config import TrackerConfig


def params_table() -> str:
    rows = ["| parameter | default | range | description |", "|---|---|---|---|"]
    for field in dataclasses.fields(TrackerConfig):
        meta = field.metadata
        if meta["choices"]:
            valid = ", ".join(meta["choices"])
        elif meta["low"] is not None:
            valid = f"{meta['low']} .. {meta['high']}"
        else:
            valid = ""
        default = f'"{field.default}"' if isinstance(field.default, str) else field.default
        rows.append(f"| `{field.name}` | {default} | {valid} | {meta['description']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(params_table())
