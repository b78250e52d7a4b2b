# Two commands do everything on a fresh clone: `make demo` and `make test` (`make web`: the web page).
# Each first builds .venv from requirements.txt (once; again when requirements.txt changes).
# Videos are read from data/, or from $(DANCE_DATA) when it is set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test web venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

demo: venv
	$(PY) DanceDemo.py --output output/demo.mp4

test: venv
	$(PY) -m pytest -q --durations=15 tests

web: venv
	$(PY) app.py

clean:
	rm -rf cache output .pytest_cache
