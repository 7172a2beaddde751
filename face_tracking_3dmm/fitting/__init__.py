"""Fitting the ICT model to a face: rotations, camera projection, the landmark solver, the start-up
identity fit, the contour-aware 68 points and the photometric refinement."""
