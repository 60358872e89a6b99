# nucflow — set-up and everyday commands. `make demo` and `make test` are all a new user needs.
PYTHON ?= python3
VENV ?= .venv
# CUDA users: override the torch requirement and pip arguments, e.g.
#   make demo TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.nucflow-installed

.PHONY: install demo test lint bench config-docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[workflow,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report report.zip
	@echo "Demo finished. Results are in results/ (per experiment: results/<experiment>/metrics.csv,"
	@echo "folds/<k>/, predict/<name>/predictions.csv), logs in logs/, an HTML report in report.zip."

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

# -P: benchmarks/tokenize.py must not shadow the standard library's tokenize module
bench: $(STAMP)
	$(BIN)/python -P benchmarks/tokenize.py
	$(BIN)/python -P benchmarks/train_cnn.py
	$(BIN)/python -P benchmarks/bert.py
	$(BIN)/python -P benchmarks/saluki.py
	$(BIN)/python -P benchmarks/etl.py
	$(BIN)/python -P benchmarks/windows.py
	$(BIN)/python -P benchmarks/loo.py
	$(BIN)/python -P benchmarks/demo.py
	$(BIN)/python -P benchmarks/dag.py

config-docs: $(STAMP)
	$(BIN)/nucflow config-docs > config/README.md

clean:
	rm -rf results logs .snakemake
