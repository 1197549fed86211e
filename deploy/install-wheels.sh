#!/bin/sh
# Install the proxy from WHEELHOUSE alone (no index, nothing compiled) into a new virtual
# environment at PREFIX. Extra requirements (in-house plugins whose wheels were added to
# the wheelhouse) may follow; the default is the proxy itself. The container's final stage
# (deploy/Dockerfile) and tests/test_packaging.py run this very script.
#   sh deploy/install-wheels.sh WHEELHOUSE PREFIX [REQUIREMENT...]
set -eu
wheelhouse=${1:?usage: install-wheels.sh WHEELHOUSE PREFIX [REQUIREMENT...]}
prefix=${2:?usage: install-wheels.sh WHEELHOUSE PREFIX [REQUIREMENT...]}
shift 2
if [ $# -eq 0 ]; then
    set -- drm-license-proxy
fi
"${PYTHON:-python3}" -m venv "$prefix"
"$prefix/bin/python" -m pip install --no-cache-dir --no-index --find-links "$wheelhouse" "$@"
