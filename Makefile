# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv, install the toolkit with the CPU build of torch pinned, and run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench bench-check clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/plan-bs-deploy scenarios/demo.yaml --problem all --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q tests notebooks --nbmake

bench: $(STAMP)
	$(PY) -m forecasting.evaluate --out bench/results

# the shipped public model on the real cities' test regions, its ratios beside the committed table's (~5 min)
bench-check: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) bench/check_shipped.py

clean:
	rm -rf $(VENV) out
