"""Inputs and outputs without ROS: frame sources (video, images, bags, devices), image encodings, results."""
