# Entry points named in README.md. Each creates .venv on first use and reinstalls only
# when pyproject.toml changed (the stamp files below), so running twice is fast.
#
#   make notebooks            execute every notebook top to bottom, save with outputs
#   make notebooks SMOKE=1    the same in the fast smoke configuration (COURSE_SMOKE=1)
#   make test                 ruff + pytest (unit tests, nbval and papermill, smoke mode)
#   make rehearse             every notebook with its full-mode (GPU) settings on 2 batches of
#                             data, 01-02 in fp16 with the gradient scaler as on a T4; executed
#                             copies in build/rehearsal/, notebooks untouched
#   make homework / make html student versions / HTML exports (see README)
#   make grade SUBMISSIONS="a.ipynb b.ipynb"   re-execute and grade submissions

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9]*.ipynb))
HOMEWORK_DIR ?= build/homework
HTML_DIR ?= build/html
SMOKE ?=

ifeq ($(SMOKE),1)
SMOKE_FLAG := --smoke
endif

.DEFAULT_GOAL := help
.PHONY: help notebooks test rehearse lint homework grade html venv clean

help:
	@echo "make notebooks [SMOKE=1]   run all notebooks and save them with outputs"
	@echo "make test                  lint + unit tests + notebook tests (smoke mode)"
	@echo "make rehearse              full-mode settings on 2 batches of data (CI's rehearsal)"
	@echo "make homework              student versions in $(HOMEWORK_DIR)"
	@echo "make grade SUBMISSIONS=\"a.ipynb b.ipynb\"  re-run and grade submissions"
	@echo "make html                  HTML exports in $(HTML_DIR)"

# --- environment -----------------------------------------------------------------------
$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else \
	  "Python 3.10+ is needed, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

# pip picks the torch build for this machine; no version is forced here (see README).
$(VENV)/.installed-notebooks: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[notebooks]'
	@touch $@

$(VENV)/.installed-instructor: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[instructor]'
	@touch $@ $(VENV)/.installed-notebooks

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-notebooks $(VENV)/.installed-instructor

venv: $(VENV)/.installed-dev

# --- the two main jobs -------------------------------------------------------------------
notebooks: $(VENV)/.installed-notebooks
	$(PY) -m course_tools run $(SMOKE_FLAG) $(NOTEBOOKS)

test: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	COURSE_SMOKE=1 $(PY) -m pytest

# Full mode as a student's GPU runs it (the GPU models at their native size, full batch sizes,
# every full-mode branch), on two batches of data so that it finishes on a CPU. fp16 with the
# gradient scaler (a T4's path) is many times slower than fp32 on a CPU: only the small
# networks of 01-02 take it here. Also rewrites course_utils/full_runs.json (T4 time, memory).
FP16_REHEARSAL := $(filter notebooks/01_% notebooks/02_%,$(NOTEBOOKS))
rehearse: $(VENV)/.installed-notebooks
	$(if $(FP16_REHEARSAL),$(PY) -m course_tools run --rehearse --precision fp16 $(FP16_REHEARSAL))
	$(if $(filter-out $(FP16_REHEARSAL),$(NOTEBOOKS)),$(PY) -m course_tools run --rehearse $(filter-out $(FP16_REHEARSAL),$(NOTEBOOKS)))

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .

# --- instructor tools ----------------------------------------------------------------------
homework: $(VENV)/.installed-instructor
	$(PY) -m course_tools homework --out $(HOMEWORK_DIR) $(NOTEBOOKS)

# Grading executes the students' code (in a throwaway folder, scrubbed environment, timeouts):
# see README, "Grading". make grade SUBMISSIONS="a.ipynb b.ipynb" [SMOKE=1]
grade: $(VENV)/.installed-instructor
	@test -n "$(SUBMISSIONS)" || { echo 'usage: make grade SUBMISSIONS="a.ipynb b.ipynb"'; exit 2; }
	$(PY) -m course_tools grade $(SMOKE_FLAG) $(SUBMISSIONS)

html: $(VENV)/.installed-notebooks
	$(PY) -m course_tools html --out $(HTML_DIR) $(NOTEBOOKS)

clean:
	rm -rf build notebooks/results .pytest_cache
