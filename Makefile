# The README's two commands: `make demo` (the main job) and `make test`. Both run `make setup`
# first, which is idempotent (a second run takes well under 10 s and changes nothing).
#   make demo [DEMO_ARGS=...]      tracker node + video publisher + subscriber on real ROS 2
#   make test [PYTEST_ARGS=...]    the whole test suite, e.g. PYTEST_ARGS='-m "not slow"'
#   make setup                     .venv/ from requirements/lock.txt + colcon build (tools/setup.sh)
#   make lock                      regenerate requirements/lock.txt from requirements/*.txt
#   make clean                     remove the colcon build (build/ install/ log/)
#   make distclean                 also remove .venv/
SHELL := /bin/bash
ROS_RUN := tools/ros-run
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup demo test lock clean distclean

setup:
	@bash tools/setup.sh

demo: setup
	@$(ROS_RUN) python -m fartrack_ros.demo $(DEMO_ARGS)

# pytest exit code 5 means it collected no tests: nothing was checked, so that fails too.
test: setup
	@$(ROS_RUN) pytest $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): nothing was checked" >&2; fi; \
	  exit $$rc; }

lock:
	@bash tools/make-lock.sh

clean:
	rm -rf build install log

distclean: clean
	rm -rf .venv
