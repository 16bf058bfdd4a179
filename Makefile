# Two entry points, each doing all set-up first (idempotent):
#   make demo   generate the toy persons dataset, train a ResNet-18 heatmap
#               model and fine-tune it with the soft-argmax head through
#               mmpose's stock tools, print coco/AP
# Every demo is one recipe of tools/demo/run_demo.py (mmkp_ext/demo/);
# smoke run: make demo-swahr DEMO_ARGS="--num-images 40 --epochs 1"
#   make test   run the test suite (TEST_WORKERS=2 parallel workers)
#   make demo-centernet   grouped CenterNet on toy fashion data
#   make demo-swahr   bottom-up HigherHRNet with and without SWAHR on toy persons
#   make demo-poseur   tiny Poseur (transformer regression) on toy persons
#   make demo-hrnetpp  HRNet++ heatmap -> soft-argmax, ensemble, ensemble + TTA
#   make demo-softgated  soft-gated hourglass / U-Net hybrid on toy persons
# Use an existing environment instead of .venv:  make test PYTHON=$(which python)
PYTHON ?=
PY := $(if $(PYTHON),$(PYTHON),$(CURDIR)/.venv/bin/python)
export PYTHONUNBUFFERED := 1

.PHONY: deps demo demo-centernet demo-poseur demo-hrnetpp demo-softgated demo-swahr test

deps:
	PYTHON=$(PYTHON) bash tools/install_deps.sh

demo: deps
	$(PY) tools/demo/run_demo.py softargmax $(DEMO_ARGS)

# Grouped CenterNet on toy fashion data: train, then per-category AP with
# rescored and nearest decoding.
demo-centernet: deps
	$(PY) tools/demo/run_demo.py centernet $(DEMO_ARGS)

# Tiny Poseur on toy persons: train with stock train.py, test.py, coco/AP.
demo-poseur: deps
	$(PY) tools/demo/run_demo.py poseur $(DEMO_ARGS)

# HRNet++ on toy persons: heatmap model, soft-argmax fine-tune, their
# ensemble and ensemble + TTA, each tested with stock test.py (coco/AP).
demo-hrnetpp: deps
	$(PY) tools/demo/run_demo.py hrnetpp $(DEMO_ARGS)

# Soft-gated hourglass on toy persons: stock train.py, test.py (coco/AP),
# histogram of the learned gates.
demo-softgated: deps
	$(PY) tools/demo/run_demo.py softgated $(DEMO_ARGS)

# Bottom-up HigherHRNet and SWAHR on toy persons: stock train.py / test.py,
# coco/AP of both (same data, schedule, seed).
demo-swahr: deps
	$(PY) tools/demo/run_demo.py swahr $(DEMO_ARGS)

# One pytest-xdist worker per core (tests/conftest.py gives each worker and
# its training subprocesses one thread); a test file stays on one worker.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: deps
	$(PY) -m pytest tests -q -p no:cacheprovider \
	  $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
