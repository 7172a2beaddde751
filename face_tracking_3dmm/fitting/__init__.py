"""Fitting the ICT model to a face: the landmark solver, the start-up identity fit, the
contour-aware 68 points and the photometric refinement (camera and rotation maths: ``geometry``)."""
