# BoneScreen: `make demo` runs the main job on sample data, `make test` runs the tests.
# Both create .venv and install what they need on first use (the napari tests also need
# Xvfb and Qt's X libraries, the SEG/SR conformance test dicom3tools' dciodvfy, the permission tests util-linux's setpriv: `make system-deps` installs
# them on Debian/Ubuntu, as root).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_DEPS := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libgl1 libegl1 \
	libdbus-1-3 libfontconfig1 libxcb-cursor0 libglib2.0-0 python3-venv dicom3tools util-linux

.PHONY: install demo test lint system-deps clean

$(STAMP): ml/pyproject.toml pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV) with $(PYTHON): on Debian/Ubuntu run 'make system-deps' (as root: python3-venv)"; exit 2; }
	$(BIN)/python -m pip install -q --upgrade pip
	# torch from pip's configured index (a CPU build on the development machines; the public PyPI serves
	# the multi-GB CUDA build): TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU wheels
	$(BIN)/python -m pip install -q "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e "ml[dev]" -e ".[testing]"
	touch $(STAMP)

install: $(STAMP)

# installs whichever of APT_DEPS is missing (a machine may have Xvfb but not Qt 6's libxcb-cursor0)
system-deps:
	@# (Ubuntu 24.04 renamed some libraries with a t64 suffix, libglib2.0-0t64: either name counts as installed)
	@missing=$$(for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || dpkg -s $${p}t64 >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ] && [ "$$(id -u)" != 0 ]; then \
		echo "system-deps: installing $$missing needs root: run 'sudo make system-deps' (or install them yourself)" >&2; exit 1; \
	fi; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

demo: install
	bash scripts/demo.sh

lint: install
	$(BIN)/ruff check .

# --durations=25: CI's log names the slowest tests (the suite must stay under 40 minutes on an AVX2-only CPU)
test: install lint
	@if [ -n "$$DISPLAY" ]; then $(BIN)/python -m pytest tests --durations=25; \
	elif command -v xvfb-run >/dev/null; then xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest tests --durations=25; \
	else echo "xvfb-run is missing: run 'make system-deps' (as root) for the napari tests"; exit 2; fi

clean:
	rm -rf $(VENV) demo-out bench-out
