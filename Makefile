# make install: .venv with requirements.txt (quick when already done)
# make test:    install, then the test suite
# make demo:    install, sample data, the whole pipeline, a trained model
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench docs-images clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q tests

demo: install
	@echo "make demo: coming with the demo issue"

clean:
	rm -rf $(VENV) .pytest_cache
