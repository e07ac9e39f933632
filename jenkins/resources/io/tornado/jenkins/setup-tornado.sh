#!/usr/bin/env bash
# Installs the tornado CLI into $TORNADO_VENV on this agent, once (later stages reuse it).
# TORNADO_CORE_VERSION pins the version; empty means the newest on the agent's package index.
set -euo pipefail
venv="${TORNADO_VENV:?TORNADO_VENV is not set}"
if [ -x "$venv/bin/tornado" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "tornado-core${TORNADO_CORE_VERSION:+==$TORNADO_CORE_VERSION}" "pytest>=8"
"$venv/bin/tornado" --help >/dev/null
