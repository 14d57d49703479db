# The two commands of the README: `make demo` and `make test`. Each does all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install test demo bench clean lint slurm-up slurm-down

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[dev,wandb]"
	$(PIP) install --quiet --no-deps "sweeps==0.3.0"  # pins numpy<2 in its metadata; runs on numpy 2 (pyproject [wandb])
	rm -f $(VENV)/.installed-*
	touch $@

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	$(PY) -m lightning_dfd demo

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: install
	$(PY) -m ruff check lightning_dfd tests benchmarks

clean:
	rm -rf $(VENV) outputs wandb lightning_logs .pytest_cache

# A one-node SLURM cluster on this machine for the `slurm` tests (root; apt-get slurm-wlm + munge once).
slurm-up:
	slurm/local_cluster.sh up

slurm-down:
	slurm/local_cluster.sh down
