# The two set-up commands of the README: `make run` and `make test`. Each installs what it needs
# into .venv (once per change of requirements.lock / pyproject.toml), then does its job.
PYTHON   ?= python3.11
VENV     ?= .venv
BIN      := $(VENV)/bin
SAMPLES  := /usr/share/doc/opencv-doc/examples/data/vtest.avi
export PATH := $(abspath $(BIN)):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DAGSTER_DISABLE_TELEMETRY := 1
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1

.PHONY: help setup run test test-assets fault-corpus repro lock clean distclean
.PHONY: ui serve

help:
	@echo "make run          the whole pipeline on the tiny profile (installs first; ~20 min on 2 cores)"
	@echo "make test         the test suite, two workers (installs first; ~13 min on 2 cores)"
	@echo "make ui           the Dagster UI (127.0.0.1:3000) and the MLflow UI (127.0.0.1:5000)"
	@echo "make serve        the champion over REST (127.0.0.1:5001, POST /invocations)"
	@echo "make repro        the DVC pipeline (dvc repro)"
	@echo "make fault-corpus every step killed at every write point (about an hour)"
	@echo "make lock         re-resolve requirements.lock after editing pyproject.toml"
	@echo "make clean        remove what runs produced (curated data, controls, models, MLflow"
	@echo "                  store, Dagster instance, outputs, report pictures); keeps data/raw,"
	@echo "                  weights/, .venv and every committed file"
	@echo "make distclean    clean, and remove .venv too"

# LOCK=requirements-gpu.lock installs PyPI's CUDA build of torch instead of the CPU one (Linux
# x86-64 with NVIDIA GPUs): `make setup LOCK=requirements-gpu.lock`, then `make run` as usual.
LOCK ?= requirements.lock
# One stamp per lock, the other removed at install: switching locks reinstalls.
STAMP := $(VENV)/.installed-$(notdir $(LOCK))

setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed*
	touch $@

# The main job: render the default data (tracked by data.dvc), then the whole Dagster asset graph
# in-process (curation, the controls of every video in one run, training, benchmark, promotion)
# on the instance in $DAGSTER_HOME (.dagster_home/ by default, which `make ui` shows).
# `longvie pipeline` runs the same steps without Dagster.
run: setup
	$(BIN)/python -m orchestration.main_job

# The Dagster UI and the MLflow UI on 127.0.0.1; Ctrl-C stops both (src/longvie/ui.py).
# Other ports: `make ui DAGSTER_PORT=3001 MLFLOW_PORT=5001`.
DAGSTER_PORT ?= 3000
MLFLOW_PORT  ?= 5000
ui: setup
	DAGSTER_PORT=$(DAGSTER_PORT) MLFLOW_PORT=$(MLFLOW_PORT) $(BIN)/python -m longvie.ui

# The champion as a REST endpoint: MLflow's scoring server on 127.0.0.1 (POST /invocations).
# Another port or version: `make serve SERVE_PORT=5002 SERVE_MODEL=3`.
SERVE_PORT  ?= 5001
SERVE_MODEL ?= champion
serve: setup
	$(BIN)/longvie serve serving.port=$(SERVE_PORT) serving.model=$(SERVE_MODEL)

# Real videos no one here made, from Debian's opencv-doc (see tests/conftest.py), and Debian's
# PostgreSQL server, which the tests start on a loopback port (tests/helpers/postgres.py).
test-assets:
	@test -f $(SAMPLES) || { \
	  echo "installing Debian's opencv-doc for its sample videos"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -qq --no-install-recommends opencv-doc) >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the database tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -qq --no-install-recommends postgresql) >/dev/null; }

# Two pytest workers, one per core (pytest-xdist). Each test file stays on one worker, so its
# module fixtures are built once; files are handed out in collection order, slow ones first
# (tests/conftest.py), and each worker's torch uses its share of the cores.
# pytest's exit code 5 means "no tests ran": that must fail, not pass.
TEST_WORKERS ?= 2
test: setup test-assets
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The fault corpus with every step SIGKILLed at every one of its write points, where `make test`
# kills at the first, middle and last and wherever an output is opened in place
# (tests/helpers/fault_corpus.py): about an hour here, too long for CI.
fault-corpus: setup
	LONGVIE_FAULT_CORPUS_KILLS=all $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load -s \
	  tests/reliability/test_fault_corpus.py tests/reliability/test_fault_corpus_models.py

# The DVC pipeline (needs data/raw: `longvie synth` or `dvc pull` first).
repro: setup
	$(BIN)/dvc repro

# Re-resolve the pinned dependency set after editing pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[test]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^longvie' > requirements.lock
	rm -rf .lock-venv
	$(PYTHON) bin/gpu_lock.py

# Only ignored outputs of runs: data/raw (DVC-tracked input), weights/ (shipped) and committed
# files such as reports/*.json stay. Says what it removes.
CLEANED := data/curated data/controls models mlruns mlflow.db .dagster_home outputs \
           $(wildcard reports/*.png reports/*.gif)
clean:
	@for path in $(CLEANED); do \
	  if [ -e "$$path" ]; then echo "removing $$path"; rm -rf "$$path"; fi; \
	done

distclean: clean
	@if [ -e "$(VENV)" ]; then echo "removing $(VENV)"; rm -rf "$(VENV)"; fi
