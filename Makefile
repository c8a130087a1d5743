# The two commands: `make run` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run demo test lint bench bench-funnel bench-import bench-audience bench-receipts bench-broadcast bench-sleeping mutation vendor-chartjs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: set up, start the local stack (Temporal, worker, gateway, simulator), play the demo, serve until Ctrl-C
run: $(STAMP)
	$(BIN)/nudge up

## demo: the same demo against a throwaway state directory; exits 0 only if every journey ended as expected
demo: $(STAMP)
	$(BIN)/nudge demo

## test: set up and run the whole suite (unit, activities, workflows, gateway, e2e), in TEST_WORKERS processes
# Three processes on two cores: most tests wait on a server (Temporal, the gateway, PostgreSQL),
# so the suite took 14 minutes here, against over 20 in one process. A file's tests stay in one
# process (its module-scoped stacks start once). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -q -ra -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy nudge workflows activities starter simulator worker.py

## bench: journeys/s under a backlog, then event -> provider latency at 10 events/s, each next to a raw-Temporal baseline (prints, writes bench/results/)
bench: $(STAMP)
	$(BIN)/python -m bench.raw --events 500
	$(BIN)/python -m bench.journeys --events 500
	$(BIN)/python -m bench.raw --events 300 --rate 10
	$(BIN)/python -m bench.journeys --events 300 --rate 10

## bench-funnel: the funnel report over a million messages on PostgreSQL at 127.0.0.1:5432, in a database of its own (prints, writes bench/results/)
bench-funnel: $(STAMP)
	$(BIN)/python -m bench.funnel $(FUNNEL_ARGS)

## bench-import: nudge customers import of 100,000 rows (IMPORT_ARGS=--million for 1,000,000) on SQLite and on PostgreSQL at 127.0.0.1:5432, next to the old batch path (prints, writes bench/results/)
bench-import: $(STAMP)
	$(BIN)/python -m bench.import $(IMPORT_ARGS)

## bench-audience: counting audiences over a million profiles on PostgreSQL at 127.0.0.1:5432, and a broadcast's page-through, in a database of its own (prints, writes bench/results/)
bench-audience: $(STAMP)
	$(BIN)/python -m bench.audience $(AUDIENCE_ARGS)

## bench-receipts: receipts and clicks the gateway stores per second, per provider format, counted afterwards (RECEIPTS_ARGS="--against DIR" for another checkout side by side)
bench-receipts: $(STAMP)
	$(BIN)/python -m bench.receipts $(RECEIPTS_ARGS)

## bench-broadcast: a broadcast to 100,000 recipients (BROADCAST_ARGS="--recipients 1000000"), next to the raw durable and transport ceilings and the one-by-one floor (prints, writes bench/results/)
bench-broadcast: $(STAMP)
	$(BIN)/python -m bench.broadcast $(BROADCAST_ARGS)

## bench-sleeping: 5,000 journeys asleep at once (SLEEPING_ARGS="--journeys 100000" for the target), the worker's RSS meanwhile, then their wake (prints, writes bench/results/)
bench-sleeping: $(STAMP)
	$(BIN)/python -m bench.sleeping $(SLEEPING_ARGS)

## mutation: plant the bugs issue 9 found, then mutation-test the core with mutmut (long; not in `make test`): the score per module and the survivors
mutation: $(STAMP)
	$(BIN)/python -m tests.mutation.planted
	$(BIN)/python -m tests.mutation $(MUTATION_ARGS)

## vendor-chartjs: refresh the dashboard's Chart.js from the npm registry (committed: the dashboard never loads a CDN)
CHARTJS ?= 4.6.1
vendor-chartjs:
	cd $$(mktemp -d) && npm pack --silent chart.js@$(CHARTJS) && tar xzf chart.js-$(CHARTJS).tgz && \
	cp package/dist/chart.umd.min.js $(CURDIR)/starter/dashboard/static/ && \
	cp package/LICENSE.md $(CURDIR)/starter/dashboard/static/chart.js.LICENSE.md

clean:
	rm -rf $(VENV) .nudge mutants
