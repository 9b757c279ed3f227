# Set-up contract: `make demo`, `make test` and `make bench` create/refresh .venv/ and do all set-up.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# (no allocator environment: the program tunes glibc's allocator itself, tagbox_pipeline/allocator.py)

# the read-only shared tagger weights, when present beside the repo (real users fetch them: tagbox models fetch)
SHARED_MODELS := $(wildcard $(CURDIR)/../shared/models/sota-music-tagging)
BENCH_ENV := TAGBOX_MODEL_DIR=$${TAGBOX_MODEL_DIR:-$(SHARED_MODELS)}

.PHONY: venv demo test test-all bench bench-quality clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps musicnn==0.1.0
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "note: could not install chromium (needs root); the browser test will skip"
	command -v fluidsynth >/dev/null && test -e /usr/share/sounds/sf3/MuseScore_General.sf3 \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends fluidsynth musescore-general-soundfont; } \
		|| echo "note: could not install fluidsynth (needs root); the held-out bench set and its test will skip"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# two workers, one test file each at a time: most tests wait on subprocesses, servers and files;
# module fixtures stay within their file. `make test` leaves out the tests marked slow (scale and
# repetition, see pyproject.toml); `make test-all` runs them too
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=30

test: $(STAMP)
	$(PYTEST) -m "not slow" tests

test-all: $(STAMP)
	$(PYTEST) tests

bench: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m tagbox_pipeline.bench all

# the quality matrix and the ablation score the offline default (they leave out taggers that need a download)
bench-quality: $(STAMP)
	$(BIN)/python -m tagbox_pipeline.bench quality detection ablation

clean:
	rm -rf $(VENV) build *.egg-info
