# shellcheck shell=bash
# Sourced by setup.sh and test.sh (from the repository root): sets PYTHON, the interpreter
# the project is installed into and the tests run with, the same for both scripts:
# - the active virtual environment's python3, if one is active;
# - else ./.venv, if it exists (the README's first command makes it);
# - else a new ./.venv, if python3 is "externally managed" (PEP 668: Debian 12, Ubuntu
#   23.04+, Homebrew), where pip refuses to install into it (unless
#   PIP_BREAK_SYSTEM_PACKAGES is set: then python3 itself, as asked);
# - else python3 itself (CI's fresh machine).
# NEED_VENV=1 says a venv will be made (setup.sh then makes sure `python3 -m venv` works).
NEED_VENV=0
if python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  PYTHON=$(command -v python3)
elif [ -x .venv/bin/python ]; then
  PYTHON=$PWD/.venv/bin/python
elif [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ] && python3 -c '
import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
  PYTHON=$PWD/.venv/bin/python
  NEED_VENV=1
else
  PYTHON=$(command -v python3)
fi
