# Benchmarks: the app against the bare inngest-py FastAPI example (see benchmarks/README.md).
# `make bench` writes benchmarks/results/latest.json; `make bench QUICK=1` is the under-a-minute version
# (writes latest-quick.json). BENCH_OUT=path overrides the output file, BENCH_ARGS passes runner flags.
BENCH_OUT ?=
BENCH_ARGS ?=

.PHONY: bench

bench: venv ## Benchmark the app vs the bare SDK example with wrk (QUICK=1: short run under a minute)
	$(PY) -m benchmarks $(if $(filter-out 0 no false,$(QUICK)),--quick) $(if $(BENCH_OUT),--out $(BENCH_OUT)) $(BENCH_ARGS)
