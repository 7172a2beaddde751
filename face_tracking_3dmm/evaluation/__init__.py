"""Accuracy, stability and latency measurement of the tracker (no ROS imports here).

`annotations` reads people's annotations, `metrics` turns predictions and annotations into numbers,
`report` draws the plots and the HTML page (bags are read and written by :mod:`face_tracking_3dmm.io.bags`).
The ROS replay that drives the real tracker node lives apart in `replay` so that everything else
imports without a ROS context.
"""
