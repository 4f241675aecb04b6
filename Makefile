# Quick start: `make demo` runs the pipeline on sample data; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo up down status logs lint figures docs browser

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,batch,deploy]'
	$(PY) -m extractor.batch.class_archive
	touch $(STAMP)

venv: $(STAMP)

# local servers (Kafka, FerretDB, Kafka Connect) under .services/: `make down WIPE=1` also deletes their data
up: venv
	$(PY) -m services up

down: venv
	$(PY) -m services down $(if $(WIPE),--wipe,)

status: venv
	$(PY) -m services status

logs: venv
	$(PY) -m services logs $(or $(NAME),kafka)

# the review console's browser tests drive Debian's chromium (Playwright, no browser download): installed with
# apt-get when run as root; otherwise those tests skip and say which command installs it
browser:
	@test -x /usr/bin/chromium || { if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "chromium is missing: run 'sudo apt-get install chromium' for the browser tests"; fi; }

test: venv browser
	$(PY) -m services up
	$(PY) -m pytest

demo: venv
	$(PY) -m services up
	$(PY) -m extractor.tools.demo

lint: venv
	$(PY) -m ruff check extractor evaluation services tests

# docs/figures.md: the evaluation suite and the benchmarks, with command, date, commit and machine load
# (`make figures ALL=1`: every benchmark, a 10-minute soak included)
figures: venv
	$(PY) -m services up
	$(PY) scripts/figures.py $(if $(ALL),--all,--pipeline)

# the generated pages (settings reference, home page), then the site into out/site
docs: venv
	$(PY) -m extractor.tools.docs
	$(PY) -m mkdocs build --strict
