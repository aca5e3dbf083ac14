# fediverse.mastodon: the contract the README and CI rely on.
#   make demo    deploy to the local lab (or DEMO_KUBECONFIG's cluster)
#   make test    every quality gate, the lab included
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_PYTHON_INTERPRETER := $(CURDIR)/$(VENV)/bin/python
CACHE ?= $(HOME)/.cache/fediverse-mastodon
TARBALL := $(CURDIR)/.cache/build/fediverse-mastodon-$(shell sed -n 's/^version: *//p' galaxy.yml).tar.gz

.PHONY: help venv test lint sanity units integration molecule build importer demo bench bench-floor bench-backup clean \
        lab-up lab-down lab-status lab-env ee-context

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'
	@echo "  make lint | sanity | units | integration | molecule | build | bench | bench-floor | bench-backup | ee-context"
	@echo "  make lab-up | lab-down | lab-status | lab-env | clean"

$(VENV)/.stamp: requirements.txt requirements-dev.txt constraints.txt
	@bash scripts/bootstrap.sh "$(VENV)"
	@touch $@

venv: $(VENV)/.stamp

test: venv
	@bash scripts/test.sh

lint: venv
	yamllint -s .
	ansible-lint --offline

sanity: venv
	@bash scripts/sanity.sh

units: venv
	pytest -q -p no:cacheprovider -n 2 tests/unit

integration: venv
	@eval "$$(bash tests/lab/lab.sh env)" && pytest -q -p no:cacheprovider -n "$${INTEGRATION_WORKERS:-2}" --dist loadfile tests/lab tests/integration

molecule: venv
	@bash scripts/molecule.sh

build: venv
	@mkdir -p .cache/build
	ansible-galaxy collection build --force --output-path .cache/build .

importer: build
	@bash scripts/importer.sh "$(TARBALL)"

demo: venv
	@bash scripts/demo.sh

bench: venv
	@bash bench/run.sh

bench-floor: venv
	@bash bench/run.sh --floor

bench-backup: venv
	@bash bench/run.sh --backup

ee-context: venv
	@bash scripts/ee-context.sh .cache/ee-context

lab-up: venv
	@bash tests/lab/lab.sh up

lab-down:
	@bash tests/lab/lab.sh down

lab-status:
	@bash tests/lab/lab.sh status

lab-env:
	@bash tests/lab/lab.sh env

clean:
	rm -rf .cache tests/output .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
