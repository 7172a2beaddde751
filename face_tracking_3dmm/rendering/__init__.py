"""Rendering of the face model: the mesh structure, rasterisation, attribute interpolation, SH
shading, backends."""
from face_tracking_3dmm.rendering.interpolate import (barycentric_coordinates, interpolate_vertex_attributes,
                                                      triangle_barycentrics, triangle_barycentrics_jacobian)
from face_tracking_3dmm.rendering.mesh import Mesh
from face_tracking_3dmm.rendering.rasterize import Fragments, rasterize
from face_tracking_3dmm.rendering.renderer import (MeshRenderer, Rendering, make_renderer, project_to_pixels,
                                                   pytorch3d_available)
from face_tracking_3dmm.rendering.shading import (ambient_sh_coefficients, sh_basis, sh_basis_jacobian, sh_shading,
                                                  vertex_normals)

__all__ = ["Fragments", "Mesh", "MeshRenderer", "Rendering", "ambient_sh_coefficients", "barycentric_coordinates",
           "interpolate_vertex_attributes", "make_renderer", "project_to_pixels", "pytorch3d_available",
           "rasterize", "sh_basis", "sh_basis_jacobian", "sh_shading", "triangle_barycentrics",
           "triangle_barycentrics_jacobian", "vertex_normals"]
