# Quick start:  make demo   (set up, build the demo corpus, render, split, train, report)
#               make test   (set up, run the test suite; this is what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Speech synthesisers for the demo corpus, ffmpeg for m4a/aac decoding and codec augmentation (these 16 packages
# take 99 MB installed, plus the libraries they pull in; apt prints the total before installing).
OS_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k \
	festvox-itapc16k festvox-ca-ona-hts festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph \
	festvox-suopuhe-lj festvox-suopuhe-mv ffmpeg
# Headless browser for the web page test.
BROWSER_PACKAGES := chromium
DATA ?= data_clean
SPECS ?= spectrograms
# make demo's recipe, chosen by mean held-out-family EER in the generalisation benchmark (README, "How well it
# generalises"): compact_cmn on mel pictures, the contrastive pair loss, a moving average of the weights (EMA) and
# up to 20 epochs. The reference design stays available: make demo MODEL=baseline PAIR_LOSS=none EMA= EPOCHS=10.
MODEL ?= compact_cmn
SCALE ?= mel
PAIR_LOSS ?= contrastive
EMA ?= 0.98
EPOCHS ?= 20
PER_CLASS ?= 600
# Demo corpus channel band: narrow (3.4-5.5 kHz, every real source) or wide (6.5-7.8 kHz, real sources >= 16 kHz).
BAND ?= narrow
VENV_SIZE := 2.7 GB

.PHONY: setup os-packages browser demo data spectrograms split train test serve clean-outputs

# pip prints every package it fetches and installs; the sizes in the banner are measured (README, Quick start).
$(VENV)/.installed: requirements.txt pyproject.toml
	@echo "== Python packages into $(VENV)/ from requirements.txt: TensorFlow (CPU) and Keras, librosa, scikit-learn,"
	@echo "   pandas, matplotlib; FastAPI/uvicorn (web service); piper-tts, pyworld, pysptk (demo corpus); pytest,"
	@echo "   playwright (tests). About $(VENV_SIZE) on disk, TensorFlow alone 1.3 GB; a first install fetches about"
	@echo "   650 MB of wheels, compiles pyworld and pysptk, and its last step ('Installing collected packages')"
	@echo "   prints nothing for several minutes while it unpacks them."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	@echo "== this package, editable, so that $(VENV)/bin/deepfake-detector runs the code in src/"
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

setup: $(VENV)/.installed os-packages

# Installs the OS packages when root; otherwise prints the exact line to run.
os-packages:
	@bash scripts/install_os_packages.sh $(OS_PACKAGES)

# `make test` installs Debian's chromium for the web page test (290 MB installed, plus its libraries; apt prints
# the total before installing).
browser:
	@bash scripts/install_os_packages.sh $(BROWSER_PACKAGES)

data: setup
	@if [ -z "$$(find $(DATA) -mindepth 2 -type f 2>/dev/null | head -1)" ]; then \
		$(PY) scripts/make_demo_data.py --output $(DATA) --per-class $(PER_CLASS) --band $(BAND); \
	else echo "$(DATA)/ already holds audio: using it (empty it to rebuild the demo corpus)"; fi

spectrograms: data
	$(PY) scripts/generate_spectrograms.py --input $(DATA) --output $(SPECS) --scale $(SCALE)

split: spectrograms
	@if [ -f $(DATA)/groups.csv ]; then groups="--groups $(DATA)/groups.csv"; fi; \
	$(PY) scripts/split_data.py --input $(SPECS) $$groups

train: split
	$(PY) src/train_cnn.py --data $(SPECS) --model $(MODEL) --epochs $(EPOCHS) --pair-loss $(PAIR_LOSS) \
		$(if $(EMA),--ema $(EMA))

demo: train

test: setup browser
	@$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

serve: setup
	$(PY) scripts/serve.py

clean-outputs:
	rm -rf $(SPECS)/* models/* plots/* reports/*
