# The verbs users type. Everything installs what it needs into .venv and .tools on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SGLANG_VENV ?= .venv-sglang
CHECKOV_VENV ?= .venv-checkov
NCA_VENV ?= .venv-nca
CHART := charts/sglang-epd
VALUES ?= values-examples/qwen2.5-vl-7b-epd.yaml
RELEASE ?= sglang-epd
# No cluster to ask: skip the preflight checks of served APIs (RBG, and those options need).
OFFLINE := --set preflight.requireRbgApi=false --set preflight.requireOptionalApis=false
PYTEST_ARGS ?=
TARGET ?= local
E2E_ARGS ?=
# load tests
HOST ?= http://127.0.0.1:8000
PROFILE ?= kep-8img
SLO ?= ttft_p95_ms=3000,error_rate_max=0.01
USERS ?= 8
DURATION ?= 2m
ENCODERS ?= 2
# capacity planner
RATE ?= 2
GPUS ?= 8
COST_PROFILE ?= qwen2.5-vl-7b-h100-derived
PLAN_OUT ?= results/plan.yaml
STAMP := $(shell date +%Y%m%d-%H%M%S)
RUN_DIR ?= results/loadtest-$(PROFILE)-$(STAMP)
RUNS ?=
LABELS ?=
LOCUST_ARGS = --profile $(PROFILE) --slo $(SLO) -u $(USERS) -r $(USERS) -t $(DURATION) \
	--results-dir $(RUN_DIR) --html $(RUN_DIR)/locust.html --csv $(RUN_DIR)/locust

.PHONY: help setup parsers sglang scanners test lint render topology e2e demo loadtest loadtest-sim compare bench-sim plan bench-plan calibrate docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

.tools/bin/helm .tools/bin/helm4:
	$(PYTHON) scripts/install_helm.py

# SGLang's and sglang-router's own argument parsers, without SGLang's GPU stack (see the file's header).
$(VENV)/.parsers: requirements/parsers.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/parsers.txt
	touch $@

# Real SGLang with its dependencies, the simulator's oracle (see the file's header).
$(SGLANG_VENV)/.installed: requirements/sglang.txt
	$(PYTHON) -m venv $(SGLANG_VENV)
	$(SGLANG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/sglang.txt
	@$(SGLANG_VENV)/bin/python -c "import mooncake.engine" 2>/dev/null || echo "note: Mooncake's engine does \
	not load, so real SGLang's prefill/decode tests will skip: apt-get install libibverbs1 libnl-3-200 libnl-route-3-200"
	touch $@

# The scanners platform teams gate charts with, each in its own environment (their pins clash).
$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	touch $@

$(NCA_VENV)/.installed: requirements/nca.txt
	$(PYTHON) -m venv $(NCA_VENV)
	$(NCA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/nca.txt
	touch $@

setup: $(VENV)/.installed .tools/bin/helm .tools/bin/helm4  ## create .venv and install helm 3 and helm 4 into .tools/bin

parsers: $(VENV)/.parsers  ## install SGLang's and sglang-router's real parsers (~1.9 GB, ~50 s) for the argv tests

sglang: $(SGLANG_VENV)/.installed  ## install real SGLang 0.5.23 into .venv-sglang (~11 GB, ~3 min) for the fidelity tests

scanners: $(CHECKOV_VENV)/.installed $(NCA_VENV)/.installed  ## install checkov and network-config-analyzer (~30 s) for the security tests

test: setup parsers sglang scanners  ## run the test suite (cluster tests skip without a cluster)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup  ## ruff, helm lint --strict (Helm 3 and 4), values docs up to date
	$(PY) -m ruff check src tests scripts loadtests charts/sglang-epd/files
	for helm in .tools/bin/helm .tools/bin/helm4; do \
	  $$helm lint --strict $(CHART) $(OFFLINE) || exit 1; \
	  for f in values-examples/*.yaml; do \
	    $$helm lint --strict $(CHART) -f $$f $(OFFLINE) --quiet || exit 1; \
	  done; \
	done
	$(PY) -m sglang_epd.chart_docs --check

render: setup  ## print the manifests for VALUES (default: the KEP EPD example)
	.tools/bin/helm template $(RELEASE) $(CHART) -f $(VALUES) $(OFFLINE)

topology: setup  ## print roles, pod DNS names and URLs for VALUES and check the wiring
	$(PY) -m sglang_epd.cli topology -f $(VALUES) --release $(RELEASE)

e2e: setup  ## system tests: TARGET=local (default: the chart on this machine) or TARGET=kube (a cluster; E2E_ARGS)
	$(PY) -m pytest tests/e2e --target $(TARGET) $(E2E_ARGS)

demo: setup  ## the EPD chart on this machine (simulated SGLang, real router) under 30 s of 1-8 image traffic
	$(PY) -m sglang_epd.load.simrun -- --profile mixed-1to8 -u 4 -r 4 -t 30s --only-summary --loglevel WARNING \
	  --slo ttft_p95_ms=5000,error_rate_max=0.01 --results-dir results/demo --html results/demo/locust.html; \
	status=$$?; $(PY) -m sglang_epd.reports.report results/demo; echo "results: results/demo"; exit $$status

loadtest: setup  ## Locust against HOST (the router): PROFILE, SLO, USERS, DURATION, RUN_DIR; exit code = verdict
	$(PY) -m locust -f loadtests/locustfile.py --headless --host $(HOST) $(LOCUST_ARGS)

loadtest-sim: setup  ## the same against the chart running locally on the simulator (ENCODERS encoders)
	$(PY) -m sglang_epd.load.simrun --set encoder.replicas=$(ENCODERS) -- $(LOCUST_ARGS)

compare: setup  ## load test runs side by side: RUNS="results/a results/b" [LABELS="a,b"]
	$(PY) -m sglang_epd.reports.compare $(RUNS) $(if $(LABELS),--labels "$(LABELS)")

bench-sim: setup  ## simulator figures: 8-image TTFT vs encoders (1,2,4,8) against the cost model, encoder failure, scaling under load
	$(PY) -m sglang_epd.bench.epd_scaling --json results/bench-sim.json

plan: setup  ## size a deployment: PROFILE at RATE req/s, SLO, GPUS, COST_PROFILE -> ranked layouts, PLAN_OUT values
	$(PY) -m sglang_epd.cli plan --profile $(PROFILE) --rate $(RATE) --slo $(SLO) --gpus $(GPUS) \
	  --cost-profile $(COST_PROFILE) --values-out $(PLAN_OUT)

bench-plan: setup  ## the planner vs the process-level simulator (a few layouts and rates); writes docs/planner-agreement.json
	$(PY) -m sglang_epd.bench.plan_agreement --json docs/planner-agreement.json

calibrate:  ## on a GPU machine with torch and transformers: measure a cost profile (scripts/calibrate_cost_profile.py)
	python3 scripts/calibrate_cost_profile.py

docs: setup  ## regenerate the values table in the chart README
	$(PY) -m sglang_epd.chart_docs

clean:  ## remove the venvs, .tools and caches
	rm -rf $(VENV) $(SGLANG_VENV) $(CHECKOV_VENV) $(NCA_VENV) .tools .pytest_cache .ruff_cache results src/*.egg-info
