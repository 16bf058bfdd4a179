# Two entry points, each doing all set-up first (idempotent):
#   make demo   generate the toy persons dataset, train and evaluate the
#               soft-argmax model with mmpose's stock tools, print coco/AP
#   make test   run the test suite
#   make demo-centernet   grouped CenterNet on toy fashion data
#   make demo-poseur   tiny Poseur (transformer regression) on toy persons
# Use an existing environment instead of .venv:  make test PYTHON=$(which python)
PYTHON ?=
PY := $(if $(PYTHON),$(PYTHON),$(CURDIR)/.venv/bin/python)
export PYTHONUNBUFFERED := 1

.PHONY: deps demo demo-centernet demo-poseur test

deps:
	PYTHON=$(PYTHON) bash tools/install_deps.sh

demo: deps
	$(PY) tools/run_demo.py

# Grouped CenterNet on toy fashion data: train, then per-category AP with
# rescored and nearest decoding.
demo-centernet: deps
	$(PY) tools/run_demo_centernet.py

# Tiny Poseur on toy persons: train with stock train.py, test.py, coco/AP.
demo-poseur: deps
	$(PY) tools/run_demo_poseur.py

test: deps
	$(PY) -m pytest tests -q -p no:cacheprovider
