"""Where the project finds data it does not ship: the 3DMM, evaluation clips, caches.

Everything is resolved at call time so that environment variables set by a user, a launch file or a
test take effect without re-importing.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Repository root when running from a source checkout (None when installed elsewhere).
SOURCE_ROOT = Path(__file__).resolve().parent.parent

MODEL_ENV = "FACE_TRACKING_3DMM_MODEL"
SHARED_ENV = "FACE_TRACKING_3DMM_SHARED"
CACHE_ENV = "FACE_TRACKING_3DMM_CACHE"
#: Fast DDS profile for images between processes on one machine (a shared-memory segment that holds
#: whole images, UDP on loopback): with Fast DDS's defaults images over ~0.5 MB are fragmented and,
#: on best-effort subscriptions, about half of them were lost.
FASTDDS_LARGE_IMAGES_PROFILE = Path(__file__).resolve().parent / "data" / "fastdds_large_images.xml"


def cache_dir() -> Path:
    """Per-user cache for converted models and downloaded clips (``~/.cache/face_tracking_3dmm``)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "face_tracking_3dmm"))


def shared_dir() -> Path | None:
    """The read-only ``shared/`` folder beside the checkout (models, eval data), if present."""
    candidates = [os.environ.get(SHARED_ENV), SOURCE_ROOT.parent / "shared"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def eval_data_dir() -> Path | None:
    """``shared/eval_data`` (talking clips, AFLW2000 samples, dlib faces) when present."""
    shared = shared_dir()
    path = shared / "eval_data" if shared else None
    return path if path and path.is_dir() else None


def default_model_path() -> Path | None:
    """First existing ICT Face Model Light npz: $FACE_TRACKING_3DMM_MODEL, shared copy, then cache."""
    candidates = [os.environ.get(MODEL_ENV)]
    shared = shared_dir()
    if shared:
        candidates.append(shared / "models" / "ict_face_light" / "ict_face_light.npz")
    candidates.append(cache_dir() / "ict_face_light" / "ict_face_light.npz")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
