"""Rendering of the face model: rasterisation, attribute interpolation, shading, backends."""
from face_tracking_3dmm.rendering.rasterize import Fragments, rasterize

__all__ = ["Fragments", "rasterize"]
