"""Compiled (numba) kernels of the landmark solver's energy and its projected Levenberg-Marquardt step.

The per-frame problem is ~440 points x 59 unknowns: its arithmetic takes a fraction of a millisecond,
while numpy's per-call overhead on arrays that small took ~1 ms a solve (scripts/bench_landmark_solver.py
--clip: 1.2 ms -> 0.34 ms per solve). These kernels do one face at a time in plain, vectorised loops
(no BLAS: its per-call cost is that of these products, and its threads busy-wait on the cores that
MediaPipe needs), and :func:`lm_iteration` runs one LM iteration of every face of a batch in one call,
so a solve costs a handful of calls a frame. All take contiguous float64 arrays (the Jacobian float32)
and release the GIL (the tracker runs MediaPipe on another thread). ``fitting.landmark_solver`` holds
the energy's definition (module docstring) and the Python API; its ``_warm_up`` compiles, or loads
from numba's on-disk cache, every kernel where the solver's point bases are built, before a first
frame needs one.

Shapes: M points, K expression channels, C unknowns (6 + K, + K_id with identity columns).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from face_tracking_3dmm.geometry import CM_TO_M, axis_angle_to_matrix_jit

_KERNEL = dict(cache=True, nogil=True)

#: Columns of a batch's per-face flags (int8, (N, 4)).
ACTIVE, GRADIENT_DUE, HESSIAN_DUE, HESSIAN_CURRENT = range(4)


@numba.njit(**_KERNEL)
def _add_combination(rows, weights, out):
    """``out (L,) += weights (K,) @ rows (K, L)``, a row at a time (vectorised; zero weights, as
    expression weights at their lower bound, cost nothing). BLAS is not used: its per-call cost is
    that of this arithmetic, and its threads would busy-wait on the cores MediaPipe needs."""
    for k in range(len(weights)):
        weight = weights[k]
        if weight != 0.0:
            for i in range(len(out)):
                out[i] += weight * rows[k, i]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot(first, second):
    """``first . second``, summed in any order (vectorised): the gradient's basis products, the
    Cholesky factor's row products."""
    total = 0.0
    for i in range(len(first)):
        total += first[i] * second[i]
    return total


@numba.njit(**_KERNEL)
def observation_scale(points_px, weights, normalised):
    """An observation's weights (M,) summing to 1 (into ``normalised``) and its scale s: 1 % of the
    square root of the area of the used points' (M, 2) bounding box (at least 0.05 px)."""
    total = 0.0
    for m in range(len(weights)):
        total += weights[m]
    total = max(total, 1e-12)
    low, high = np.full(2, np.inf), np.full(2, -np.inf)
    used = 0
    for m in range(len(weights)):
        normalised[m] = weights[m] / total
        if weights[m] > 0:
            used += 1
            for axis in range(2):
                low[axis], high[axis] = min(low[axis], points_px[m, axis]), max(high[axis], points_px[m, axis])
    area = (high[0] - low[0]) * (high[1] - low[1]) if used > 1 else 1.0
    return max(math.sqrt(area) * 0.01, 0.05)


@numba.njit(**_KERNEL)
def fold_face(points_px, weights, scale_px, intrinsics, mediapipe_expression, expression_prior, temporal_units,
              previous_rotation, previous_translation_in, previous_expression, rotation_prior, rotation_prior_units,
              observed, residual_scale, units, target, pose_units, references, previous_translation, prior_diag):
    """One face's observation and priors as the kernels read them (``landmark_solver._Energy``).

    Args:
        points_px: (M, 2); weights: (M,) summing to 1; scale_px: s; intrinsics: (4,) fx, fy, cx, cy;
        mediapipe_expression, expression_prior: (K,) the prior's target m and weights p;
        temporal_units: (6 + K,) the temporal prior's weights (zeros: no previous frame), towards
        ``previous_*`` ((3, 3), (3,), (K,)); rotation_prior: (3, 3) the detector's rotation, weighted
        ``rotation_prior_units`` (3,) about the camera's axes (zeros: none).
        observed, residual_scale: (M, 2) outputs: observations in normalised image coordinates and
        ``focal * sqrt(w) / s``; units, target: (K,) outputs; pose_units (9,), references (3, 6),
        previous_translation (3,), prior_diag (C,): outputs (see :func:`face_priors`).
    Returns:
        The expression prior's constant: ``p (e - m)^2 + c (e - e_prev)^2 = (p + c) (e - target)^2
        + constant`` with ``target = (p m + c e_prev) / (p + c)``, ``constant = p c / (p + c) (m - e_prev)^2``.
    """
    for m in range(points_px.shape[0]):
        root = math.sqrt(weights[m]) / scale_px
        for axis in range(2):
            observed[m, axis] = (points_px[m, axis] - intrinsics[2 + axis]) / intrinsics[axis]
            residual_scale[m, axis] = intrinsics[axis] * root
    num_exp = mediapipe_expression.shape[0]
    prior_diag[:] = 0.0
    constant = 0.0
    for k in range(num_exp):
        prior, temporal = expression_prior[k], temporal_units[6 + k]
        units[k] = prior + temporal
        weighted = prior / units[k] if units[k] > 0 else 0.0
        target[k] = mediapipe_expression[k] + (1.0 - weighted) * (previous_expression[k] - mediapipe_expression[k])
        constant += (units[k] - prior) * weighted * (mediapipe_expression[k] - previous_expression[k]) ** 2
        prior_diag[6 + k] = units[k]
    for axis in range(3):
        pose_units[axis], pose_units[3 + axis] = temporal_units[axis], rotation_prior_units[axis]
        pose_units[6 + axis] = temporal_units[3 + axis]
        prior_diag[axis] = temporal_units[axis] + rotation_prior_units[axis]
        prior_diag[3 + axis] = temporal_units[3 + axis]
        previous_translation[axis] = previous_translation_in[axis]
        for j in range(3):
            references[j, axis], references[j, 3 + axis] = previous_rotation[axis, j], rotation_prior[axis, j]
    return constant


@numba.njit(**_KERNEL)
def face_residuals(shape, expression_rows, expression, rotation, translation, observed, residual_scale,
                   rotated, cam, residual):
    """One face's weighted pixel residuals at its parameters.

    Args:
        shape: (M, 3) identity shape, cm; expression_rows: (K, 3M) expression basis; expression (K,);
        rotation (3, 3); translation (3,) m; observed: (M, 2) observations in normalised image
        coordinates; residual_scale: (M, 2) focal * sqrt(weight) / s.
        rotated, cam: (M, 3) outputs: rotated points (m) and camera points; residual: (2M,) output.
    Returns:
        (pixel cost ``|residual|^2``, whether every point is in front of the camera).
    """
    points = np.zeros(3 * shape.shape[0])
    _add_combination(expression_rows, expression, points)
    cost, nearest = 0.0, np.inf
    for m in range(shape.shape[0]):
        px = shape[m, 0] + points[3 * m]
        py = shape[m, 1] + points[3 * m + 1]
        pz = shape[m, 2] + points[3 * m + 2]
        for i in range(3):
            value = (px * (rotation[i, 0] * CM_TO_M) + py * (rotation[i, 1] * CM_TO_M)
                     + pz * (rotation[i, 2] * CM_TO_M))
            rotated[m, i] = value
            cam[m, i] = value + translation[i]
        z = cam[m, 2]
        nearest = min(nearest, z)
        rx = (cam[m, 0] / z - observed[m, 0]) * residual_scale[m, 0]
        ry = (cam[m, 1] / z - observed[m, 1]) * residual_scale[m, 1]
        residual[2 * m], residual[2 * m + 1] = rx, ry
        cost += rx * rx + ry * ry
    return cost, nearest > 1e-3


@numba.njit(**_KERNEL)
def face_priors(expression, rotation, translation, units, target, constant, pose_units, references,
                previous_translation, gradient):
    """One face's prior energy (returned) and its gradient (written into ``gradient`` (C,), zeros
    beyond the pose and expression), from ``landmark_solver._Energy``'s folded priors.

    Args:
        units, target: (K,) expression prior ``units (e - target)^2 + constant``;
        pose_units: (9,) rotation (temporal, detector's) and translation weights;
        references: (3, 6) the two reference rotations side by side, transposed;
        previous_translation: (3,).
    """
    gradient[:] = 0.0
    cost = constant
    num_exp = expression.shape[0]
    for k in range(num_exp):
        diff = expression[k] - target[k]
        weighted = units[k] * diff
        gradient[6 + k] = weighted
        cost += weighted * diff
    relative = np.empty((3, 6))
    for i in range(3):
        for j in range(6):
            relative[i, j] = (rotation[i, 0] * references[0, j] + rotation[i, 1] * references[1, j]
                              + rotation[i, 2] * references[2, j])
    for block in range(2):
        # The skew part of each relative rotation: ((D21 - D12), (D02 - D20), (D10 - D01)) / 2.
        o = 3 * block
        err = (0.5 * (relative[2, o + 1] - relative[1, o + 2]), 0.5 * (relative[0, o + 2] - relative[2, o]),
               0.5 * (relative[1, o] - relative[0, o + 1]))
        for axis in range(3):
            weighted = pose_units[o + axis] * err[axis]
            gradient[axis] += weighted
            cost += weighted * err[axis]
    for axis in range(3):
        err = translation[axis] - previous_translation[axis]
        weighted = pose_units[6 + axis] * err
        gradient[3 + axis] += weighted
        cost += weighted * err
    return cost


@numba.njit(**_KERNEL)
def _pixel_rows(cam, residual_scale, m):
    """d(weighted pixel)/d(camera point) of point m: rows (a, 0, b) and (0, c, d)."""
    inverse_z = 1.0 / cam[m, 2]
    a, c = residual_scale[m, 0] * inverse_z, residual_scale[m, 1] * inverse_z
    return a, -a * cam[m, 0] * inverse_z, c, -c * cam[m, 1] * inverse_z


@numba.njit(**_KERNEL)
def face_gradient(rotated, cam, residual, residual_scale, rotation, expression_rows, identity_rows, gradient):
    """Add one face's ``J^T r`` to ``gradient`` (C,): the chain rule applied to the residuals'
    gradient q at each camera point: rotation ``sum_m rotated_m x q_m``, translation ``sum_m q_m``,
    model coefficients ``sum_m basis_m^T rotation^T q_m`` (identity too where C has its columns;
    ``*_rows``: (K, 3M) bases)."""
    count = rotated.shape[0]
    moments = np.zeros((3, 3))
    model_gradient = np.empty(3 * count)
    for m in range(count):
        a, b, c, d = _pixel_rows(cam, residual_scale, m)
        rx, ry = residual[2 * m], residual[2 * m + 1]
        q = (a * rx, c * ry, b * rx + d * ry)
        for i in range(3):
            for j in range(3):
                moments[i, j] += rotated[m, i] * q[j]
            gradient[3 + i] += q[i]
            model_gradient[3 * m + i] = (q[0] * rotation[0, i] + q[1] * rotation[1, i]
                                         + q[2] * rotation[2, i]) * CM_TO_M
    gradient[0] += moments[1, 2] - moments[2, 1]
    gradient[1] += moments[2, 0] - moments[0, 2]
    gradient[2] += moments[0, 1] - moments[1, 0]
    num_exp = expression_rows.shape[0]
    for k in range(num_exp):
        gradient[6 + k] += _dot(expression_rows[k], model_gradient)
    for k in range(gradient.shape[0] - 6 - num_exp):
        gradient[6 + num_exp + k] += _dot(identity_rows[k], model_gradient)


@numba.njit(**_KERNEL)
def face_jacobian(rotated, cam, residual_scale, rotation, expression_planes, identity_planes, columns, jacobian,
                  model_rows):
    """One face's float32 Jacobian of the weighted residuals w.r.t. rotation increment, translation,
    expression (and identity when ``columns`` C counts it), transposed: ``jacobian`` (padded C, 2M),
    the x residuals' rows first, then the y residuals' (the order ``J^T J`` does not see; each
    column then comes out of contiguous, vectorised loops). Padding rows stay as they are (zeros).
    ``*_planes``: (K, 3, M) float32 bases; ``model_rows``: (2, 3, M) float32 work array."""
    count = rotated.shape[0]
    scaled = np.empty((3, 3), np.float32)
    for i in range(3):
        for j in range(3):
            scaled[i, j] = rotation[i, j] * CM_TO_M
    for m in range(count):
        a, b, c, d = _pixel_rows(cam, residual_scale, m)
        px, py, pz = rotated[m, 0], rotated[m, 1], rotated[m, 2]
        y = count + m
        # Rotation increment: d(camera point) = -[rotated]x; translation: the pixel rows themselves.
        jacobian[0, m], jacobian[1, m], jacobian[2, m] = b * py, a * pz - b * px, -a * py
        jacobian[3, m], jacobian[4, m], jacobian[5, m] = a, 0.0, b
        jacobian[0, y], jacobian[1, y], jacobian[2, y] = d * py - c * pz, -d * px, c * px
        jacobian[3, y], jacobian[4, y], jacobian[5, y] = 0.0, c, d
        # Model coefficients: pixel rows @ rotation (cm -> m) @ basis at the point.
        for j in range(3):
            model_rows[0, j, m] = jacobian[3, m] * scaled[0, j] + jacobian[5, m] * scaled[2, j]
            model_rows[1, j, m] = jacobian[4, y] * scaled[1, j] + jacobian[5, y] * scaled[2, j]
    num_exp = expression_planes.shape[0]
    for k in range(columns - 6):
        planes = expression_planes[k] if k < num_exp else identity_planes[k - num_exp]
        for row in range(2):
            out = jacobian[6 + k, row * count:(row + 1) * count]
            first, second, third = model_rows[row, 0], model_rows[row, 1], model_rows[row, 2]
            for m in range(count):
                out[m] = first[m] * planes[0, m] + second[m] * planes[1, m] + third[m] * planes[2, m]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def face_hessian(jacobian, prior_diag, hessian):
    """``hessian`` (C, C) = ``J^T J`` + the priors' constant diagonal ``prior_diag`` (C,), from the
    transposed float32 Jacobian (padded C, 2M) of :func:`face_jacobian` (float32: it only shapes the
    step). Blocks of 4 x 2 of the upper triangle, each summed in registers over the residuals:
    as fast as BLAS's product on one thread, without its threads or per-call cost."""
    columns, length = hessian.shape[0], jacobian.shape[1]
    for i in range(0, columns, 4):
        r0, r1, r2, r3 = jacobian[i], jacobian[i + 1], jacobian[i + 2], jacobian[i + 3]
        for j in range(i, columns, 2):
            s0, s1 = jacobian[j], jacobian[j + 1]
            a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = np.float32(0.0)
            for m in range(length):
                x0, x1 = s0[m], s1[m]
                a00 += r0[m] * x0
                a01 += r0[m] * x1
                a10 += r1[m] * x0
                a11 += r1[m] * x1
                a20 += r2[m] * x0
                a21 += r2[m] * x1
                a30 += r3[m] * x0
                a31 += r3[m] * x1
            block = ((a00, a01), (a10, a11), (a20, a21), (a30, a31))
            for a in range(4):
                for b in range(2):
                    if i + a < columns and j + b < columns and j + b >= i + a:
                        hessian[i + a, j + b] = hessian[j + b, i + a] = block[a][b]
    for i in range(columns):
        hessian[i, i] += prior_diag[i]


@numba.njit(**_KERNEL)
def damped(hessian, damping):
    """A copy of ``hessian`` with its diagonal raised by ``damping`` times itself (Levenberg-Marquardt)."""
    out = hessian.copy()
    for i in range(len(out)):
        out[i, i] += damping * max(out[i, i], 1e-9)
    return out


@numba.njit(**_KERNEL)
def _solve_damped(hessian, gradient, damping):
    """Solve (H + damping * diag(H)) x = gradient by Cholesky (least squares if not positive
    definite); the row products vectorised (:func:`_dot`): a call of BLAS per row product costs
    more than the row's arithmetic."""
    system = damped(hessian, damping)
    size = len(system)
    factor = np.zeros_like(system)   # lower triangular, L L^T = system
    for j in range(size):
        pivot = system[j, j] - _dot(factor[j, :j], factor[j, :j])
        if not pivot > 0.0:
            return np.linalg.lstsq(system, gradient, np.finfo(np.float64).eps * size)[0]
        factor[j, j] = math.sqrt(pivot)
        for i in range(j + 1, size):
            factor[i, j] = (system[i, j] - _dot(factor[i, :j], factor[j, :j])) / factor[j, j]
    solution = gradient.copy()
    for i in range(size):
        solution[i] = (solution[i] - _dot(factor[i, :i], solution[:i])) / factor[i, i]
    for i in range(size - 1, -1, -1):
        total = solution[i]
        for j in range(i + 1, size):
            total -= factor[j, i] * solution[j]
        solution[i] = total / factor[i, i]
    return solution


@numba.njit(**_KERNEL)
def projected_step(hessian, gradient, damping, expression, step):
    """One face's projected LM step into ``step`` (C,); returns the decrease it promised before its
    expression was clamped to [0, 1] (``-g.s``) and the energy's quadratic-model decrease after
    (``-(2 g.s + s^T H s)``: gradient and Hessian are those of half the energy). An expression weight
    at a bound whose gradient pushes it outwards is held (see ``landmark_solver._projected_step``)."""
    columns = gradient.shape[0]
    free = np.empty(columns, np.int64)
    count = 0
    for i in range(columns):
        held = False
        if i >= 6:
            value = expression[i - 6]
            held = value <= 0.0 if gradient[i] > 0.0 else value >= 1.0
        if not held:
            free[count] = i
            count += 1
    free = free[:count]
    sub_hessian = np.empty((count, count))
    sub_gradient = np.empty(count)
    for i in range(count):
        sub_gradient[i] = gradient[free[i]]
        for j in range(count):
            sub_hessian[i, j] = hessian[free[i], free[j]]
    solution = _solve_damped(sub_hessian, sub_gradient, damping)
    step[:] = 0.0
    for i in range(count):
        step[free[i]] = -solution[i]
    promised = 0.0
    for i in range(columns):
        promised -= gradient[i] * step[i]
    for k in range(columns - 6):
        moved = min(max(expression[k] + step[6 + k], 0.0), 1.0)
        step[6 + k] = moved - expression[k]
    gain = 0.0   # -(2 g.s + s^T H s)
    for i in range(columns):
        if step[i] != 0.0:
            row = 0.0
            for j in range(columns):
                row += hessian[i, j] * step[j]
            gain -= step[i] * (2.0 * gradient[i] + row)
    return promised, gain


@numba.njit(**_KERNEL)
def stepped_pose(rotation, translation, expression, step, out_rotation, out_translation, out_expression):
    """Apply a (6 + K,) step: rotation increment on the left, expression clamped to [0, 1]."""
    increment = axis_angle_to_matrix_jit(step[:3])
    for i in range(3):
        for j in range(3):
            out_rotation[i, j] = (increment[i, 0] * rotation[0, j] + increment[i, 1] * rotation[1, j]
                                  + increment[i, 2] * rotation[2, j])
    for i in range(3):
        out_translation[i] = translation[i] + step[3 + i]
    for k in range(expression.shape[0]):
        out_expression[k] = min(max(expression[k] + step[6 + k], 0.0), 1.0)


@numba.njit(**_KERNEL)
def evaluate_faces(problem, rotation, translation, expression, rotated, cam, residual, pixel_cost, prior_cost,
                   prior_gradient, valid):
    """:func:`face_residuals` and :func:`face_priors` of every face of a batch ((N, ...) outputs).

    ``problem``: the tuple ``landmark_solver._Energy.problem`` gives (bases, observations, priors).
    """
    (shapes, expression_rows, identity_rows, expression_planes, identity_planes, observed, residual_scale,
     scale_px, units, target, constant, pose_units, references, previous_translation, prior_diag) = problem
    for n in range(len(rotation)):
        pixel_cost[n], valid[n] = face_residuals(shapes[n], expression_rows, expression[n], rotation[n],
                                                 translation[n], observed[n], residual_scale[n], rotated[n],
                                                 cam[n], residual[n])
        prior_cost[n] = face_priors(expression[n], rotation[n], translation[n], units[n], target[n], constant[n],
                                    pose_units[n], references[n], previous_translation[n], prior_gradient[n])


@numba.njit(**_KERNEL)
def normal_equations(problem, rotation, rotated, cam, residual, prior_gradient, jacobian, model_rows, gradient,
                     hessian, with_gradient, with_hessian):
    """Per face of a batch, the gradient ``J^T r + prior gradient`` (N, C) and/or the Gauss-Newton
    Hessian ``J^T J + prior diagonal`` (N, C, C); ``jacobian`` (padded C, 2M) and ``model_rows`` are
    :func:`face_jacobian`'s work arrays (holding the last face's Jacobian after)."""
    (shapes, expression_rows, identity_rows, expression_planes, identity_planes, observed, residual_scale,
     scale_px, units, target, constant, pose_units, references, previous_translation, prior_diag) = problem
    for n in range(len(rotation)):
        if with_gradient:
            gradient[n] = prior_gradient[n]
            face_gradient(rotated[n], cam[n], residual[n], residual_scale[n], rotation[n], expression_rows,
                          identity_rows, gradient[n])
        if with_hessian:
            face_jacobian(rotated[n], cam[n], residual_scale[n], rotation[n], expression_planes, identity_planes,
                          prior_diag.shape[1], jacobian, model_rows)
            face_hessian(jacobian, prior_diag[n], hessian[n])


@numba.njit(**_KERNEL)
def lm_iteration(problem, state, work, converged, model_held):
    """One projected LM iteration of every active face of a batch (``flags[n, ACTIVE]``); returns how
    many faces tried a step (0: the solve is over). Semantics: ``landmark_solver.solve_frames``.

    ``state``: (rotation (N, 3, 3), translation (N, 3), expression (N, K), rotated, cam (N, M, 3),
    residual (N, 2M), cost, rms, damping (N,), gradient (N, C), hessian (N, C, C), iterations, limits
    (N,) int64, flags (N, 4) int8), updated in place. ``work``: (jacobian (padded C, 2M) and model
    rows (2, 3, M) float32 (:func:`face_jacobian`), step (C,), trial rotation (3, 3), translation
    (3,), expression (K,), rotated, cam (M, 3), residual (2M,), prior gradient (C,)).
    """
    (shapes, expression_rows, identity_rows, expression_planes, identity_planes, observed, residual_scale,
     scale_px, units, target, constant, pose_units, references, previous_translation, prior_diag) = problem
    (rotation, translation, expression, rotated, cam, residual, cost, rms, damping, gradient, hessian,
     iterations, limits, flags) = state
    (jacobian, model_rows, step, trial_rotation, trial_translation, trial_expression, trial_rotated, trial_cam,
     trial_residual, trial_prior_gradient) = work
    tried = 0
    for n in range(len(cost)):
        if not flags[n, ACTIVE]:
            continue
        if flags[n, GRADIENT_DUE]:
            face_priors(expression[n], rotation[n], translation[n], units[n], target[n], constant[n], pose_units[n],
                        references[n], previous_translation[n], gradient[n])
            face_gradient(rotated[n], cam[n], residual[n], residual_scale[n], rotation[n], expression_rows,
                          identity_rows, gradient[n])
            flags[n, GRADIENT_DUE] = 0
        if flags[n, HESSIAN_DUE]:
            face_jacobian(rotated[n], cam[n], residual_scale[n], rotation[n], expression_planes, identity_planes,
                          prior_diag.shape[1], jacobian, model_rows)
            face_hessian(jacobian, prior_diag[n], hessian[n])
            flags[n, HESSIAN_DUE], flags[n, HESSIAN_CURRENT] = 0, 1
        promised, gain = projected_step(hessian[n], gradient[n], damping[n], expression[n], step)
        if not promised > converged * cost[n]:
            flags[n, ACTIVE] = 0   # its model promises no measurable decrease: done
            continue
        tried += 1
        stepped_pose(rotation[n], translation[n], expression[n], step, trial_rotation, trial_translation,
                     trial_expression)
        pixel_cost, valid = face_residuals(shapes[n], expression_rows, trial_expression, trial_rotation,
                                           trial_translation, observed[n], residual_scale[n], trial_rotated,
                                           trial_cam, trial_residual)
        trial_cost = pixel_cost + face_priors(trial_expression, trial_rotation, trial_translation, units[n],
                                              target[n], constant[n], pose_units[n], references[n],
                                              previous_translation[n], trial_prior_gradient)
        iterations[n] += 1
        if valid and math.isfinite(trial_cost) and trial_cost < cost[n]:
            flags[n, ACTIVE] = cost[n] - trial_cost >= converged * cost[n] and iterations[n] < limits[n]
            # The model held when the energy fell by about what it promised: its Hessian serves the
            # next step too.
            if not (gain > 0 and abs((cost[n] - trial_cost) / gain - 1.0) < model_held):
                flags[n, HESSIAN_DUE] = 1
            flags[n, GRADIENT_DUE], flags[n, HESSIAN_CURRENT] = 1, 0
            cost[n], rms[n] = trial_cost, math.sqrt(pixel_cost) * scale_px[n]
            damping[n] = max(damping[n] / 3.0, 1e-7)
            rotation[n], translation[n], expression[n] = trial_rotation, trial_translation, trial_expression
            rotated[n], cam[n], residual[n] = trial_rotated, trial_cam, trial_residual
        else:
            # A stale Hessian is taken again at the face's parameters before the damping grows.
            if flags[n, HESSIAN_CURRENT]:
                damping[n] *= 8.0
            else:
                flags[n, HESSIAN_DUE] = 1
            flags[n, ACTIVE] = iterations[n] < limits[n]
    return tried
