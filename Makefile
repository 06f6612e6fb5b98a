# The README's two commands are `make app` and `make test`; CI runs `make test`.
VENV ?= .venv

.PHONY: app test deps bench package clean

deps:
	bash packaging/bootstrap.sh

app: deps
	$(VENV)/bin/facemend

test: deps
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q

bench: deps
	$(VENV)/bin/python bench/completion.py

# Full installer build (not in CI: ~9 min, 1.2 GB): one-dir bundle + .deb, then the smoke test.
package: deps
	EXTRAS=test,package bash packaging/bootstrap.sh
	bash packaging/build_linux.sh
	bash packaging/smoke_test.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
