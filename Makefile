export CARGO_TARGET_DIR ?= $(HOME)/.cache/driftstack/target
.PHONY: run test test-pg openapi
run:
	scripts/run
test:
	scripts/test
# The PostgreSQL half of the end-to-end suite alone.
test-pg:
	cargo test --test foundation postgres::
openapi:
	scripts/openapi
