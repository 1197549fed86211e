#!/bin/sh
# Build the proxy's wheel, and the wheels of everything it needs, into WHEELHOUSE.
# The container's build stage (deploy/Dockerfile) and tests/test_packaging.py run this
# very script, so what CI proves installable is what the image installs.
#   sh deploy/build-wheels.sh SOURCE WHEELHOUSE
set -eu
source_dir=${1:?usage: build-wheels.sh SOURCE WHEELHOUSE}
wheelhouse=${2:?usage: build-wheels.sh SOURCE WHEELHOUSE}
"${PYTHON:-python3}" -m pip wheel --wheel-dir "$wheelhouse" "$source_dir"
