# Two commands for a newcomer: `make demo` and `make test` (both run `make setup` when needed);
# `make test-unit` runs the fast tests only (no ROS, no video), for the edit-and-test loop.
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=$${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST} \
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( $$$$ % 90 + 10 ))} ROS_LOG_DIR=$(CURDIR)/build/ros_log
DEMO_OUTPUT ?= output/demo
DEMO_FRAMES ?= 250

.PHONY: setup setup-pytorch3d check-jazzy-apt demo test test-unit clean report-example

# Idempotent: every step of scripts/setup_env.py is skipped when its inputs did not change.
setup:
	$(PYTHON) scripts/setup_env.py

# Runs the ROS 2 pipeline on a real clip; each run replaces $(DEMO_OUTPUT).
demo: setup
	rm -rf $(DEMO_OUTPUT)
	$(ROS_ENV) $(VENV)/bin/face-tracking-3dmm run --source "$$($(VENV_PYTHON) -m face_tracking_3dmm.demo_clip)" \
		--loop --max-frames $(DEMO_FRAMES) --output $(DEMO_OUTPUT)

test: setup
	mkdir -p build/ros_log
	$(ROS_ENV) $(VENV_PYTHON) -m pytest test/ -q
	$(ROS_ENV) $(PYTHON) scripts/check_jazzy_apt.py --test
	$(PYTHON) scripts/setup_pytorch3d.py --test --install-timeout 1200

# The tests marked `unit` (see pytest.ini): no ROS processes, no video decoding; well under a minute.
test-unit: setup
	$(VENV_PYTHON) -m pytest test/ -q -m unit

# PyTorch3D (the reference renderer backend) in its own venv in the user cache, reused by every
# clone: torch==2.12.0 (a ~4.9 GB CUDA build) + easypytorch3d. `make test` builds it when it can
# and runs the renderer parity tests there; it says SKIPPED when it cannot.
setup-pytorch3d:
	$(PYTHON) scripts/setup_pytorch3d.py

# ROS 2 Jazzy from apt has numpy 1.26: a second venv in the user cache with requirements-jazzy-apt.txt
# (the ros-jazzy-* wheels standing in for apt's ROS), messages built against numpy 1.26, and the
# message, tracker, node and replay tests run in it (~3.5 min the first time, ~1.5 min after).
# `make test` runs it; it says SKIPPED only when no package index answers.
check-jazzy-apt:
	mkdir -p build/ros_log
	$(ROS_ENV) $(PYTHON) scripts/check_jazzy_apt.py --test

# Regenerates docs/report_example.png: a talking clip -> bag -> replay through the tracker node -> report.
report-example: setup
	mkdir -p build/ros_log
	$(ROS_ENV) $(VENV_PYTHON) scripts/report_example.py

# Removes the build and outputs; the venv stays (delete .venv by hand to start over).
clean:
	rm -rf build install log output
