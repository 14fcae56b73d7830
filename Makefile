# The course's commands. Each target creates .venv on first use and installs tutorlib into it, then runs
# the same `python -m ...` command the README gives for a machine without make.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= standard
STAMP   := $(VENV)/.installed

CONFIRM_SEEDS ?= 20,21,22

.PHONY: course course-zh student test unit confirm lab lab-zh lab-student data checkpoints hub-test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

course: $(STAMP)  ## execute the seven notebooks and write the HTML write-up under build/course/
	$(PY) -m tutorlib.course build --profile $(PROFILE)

course-zh: $(STAMP)  ## the Chinese edition (中文版): the same chapters run with Chinese text, write-up in build/zh/course/
	$(PY) -m tutorlib.course build --lang zh --profile $(PROFILE)

student: $(STAMP)  ## exercise notebooks for students (solutions replaced by stubs) in build/student/
	$(PY) -m tutorlib.course student

test: $(STAMP)  ## unit tests + every notebook executed by nbval in the quick profile
	$(PY) -m tutorlib.course test

unit: $(STAMP)  ## the unit tests alone (no notebooks, no whole-chapter runs): about 2.5 minutes on 2 cores
	$(PY) -m tutorlib.course unit

confirm: $(STAMP)  ## every verdict decided on a second seed set (standard profile, CONFIRM_SEEDS=20,21,22; ~35 min)
	$(PY) -m tutorlib.course confirm --seeds $(CONFIRM_SEEDS)

lab: $(STAMP)  ## open the course in JupyterLab (outputs are stripped from what git sees)
	$(PY) -m tutorlib.course lab

lab-zh: $(STAMP)  ## the Chinese chapters (中文版, written to build/zh-chapters/) in JupyterLab, its menus in Chinese
	$(PY) -m tutorlib.course lab --lang zh

lab-student: $(STAMP)  ## the students' copies in JupyterLab (written to build/student/ first; a student's changes are kept)
	$(PY) -m tutorlib.course lab --student

data: $(STAMP)  ## rebuild data/fashion-mnist-small from the official IDX files
	$(PY) -m tutorlib.tools.bundle

checkpoints: $(STAMP)  ## retrain the course checkpoints and the pretraining-seed zoo (PRETRAIN_SEEDS=100,101,...: the zoo's arms at other seeds)
	$(PY) -m tutorlib.tools.checkpoints $(if $(PRETRAIN_SEEDS),--seeds $(PRETRAIN_SEEDS))

hub-test: $(STAMP)  ## a real JupyterHub with 20 system users, nbgrader's exchange and the course (root on Linux; ~6 min)
	$(PY) -m pytest -p no:cacheprovider tests/test_hub.py -m hub

bench: $(STAMP)  ## run benchmarks/ and rewrite benchmarks/RESULTS.md
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build
