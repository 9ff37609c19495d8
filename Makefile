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

# the demo: 2 x 20 synthetic clips, every step of pipeline.sh, Conv3D; ~2 minutes on 2 cores
DEMO_DATA := data/sample
DEMO_RUN := runs/demo
demo: install
	rm -rf $(DEMO_DATA) $(DEMO_DATA)-heldout $(DEMO_RUN)
	$(BIN)/python make_sample_data.py --out $(DEMO_DATA) --n 20 --seed 0
	$(BIN)/python make_sample_data.py --out $(DEMO_DATA)-heldout --n 2 --seed 1
	PYTHON=$(BIN)/python OUT=$(DEMO_RUN) PREDICT=$(DEMO_DATA)-heldout ./pipeline.sh $(DEMO_DATA) \
		--learnmethod conv3d --epochs 25 --patience 8 --test_size 0.2 --islearnrate_search false
	@echo "pictures: $(DEMO_RUN)/pictures/*/*.png $(DEMO_RUN)/curves.png $(DEMO_RUN)/confusion.png $(DEMO_RUN)/roc.png"

bench: install
	$(BIN)/python bench.py

# the README's pictures, from the demo's run
docs-images: $(DEMO_RUN)/best.pt
	mkdir -p docs
	$(BIN)/python visualize.py --target $(DEMO_DATA)/event/resized_event_001.mp4.pt --out docs
	mv docs/resized_event_001.mp4.pt.png docs/channels.png
	cp $(DEMO_RUN)/curves.png $(DEMO_RUN)/confusion.png docs/

$(DEMO_RUN)/best.pt:
	$(MAKE) demo

clean:
	rm -rf $(VENV) .pytest_cache
