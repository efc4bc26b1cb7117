# Two commands do all the set-up on a fresh machine:
#   make demo   installs, then runs the main job on built-in defaults
#   make test   installs, then runs the test suite
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q

.PHONY: install demo test bench

# torch first, the version the project is tested with; the package's own `torch>=2.1` is then met
# and nothing pulls a second torch.  The build runs isolated, from pyproject.toml's declared requirements.
install:
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test,all]"

demo: install
	$(PYTHON) -m zeroshot spaces
	$(PYTHON) -m zeroshot screen mbv2

test: install
	OPENBLAS_NUM_THREADS=1 $(PYTHON) -m pytest -q -p no:cacheprovider

bench: install
	$(PYTHON) benchmarks/run_all.py
