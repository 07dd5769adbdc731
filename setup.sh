#!/usr/bin/env bash
# Sets up everything this project needs in .venv, from a fresh Debian machine with Python 3.11.
# Idempotent: a second run only checks. The slow step, compiling mmcv's ops (~20 min on 2 cores),
# happens once per machine: pip keeps the built wheel in its cache and reuses it.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
    echo "setup.sh: needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}

# WordNet 3.0 database files, from Debian's package (WORDNET_DIR: where another install put them).
export WORDNET_DIR=${WORDNET_DIR:-/usr/share/wordnet}
if [ ! -f "$WORDNET_DIR/data.noun" ]; then
    if [ "$(id -u)" = 0 ] && [ "$WORDNET_DIR" = /usr/share/wordnet ] && command -v apt-get >/dev/null; then
        apt-get install -y --no-install-recommends wordnet-base ||
            { apt-get update && apt-get install -y --no-install-recommends wordnet-base; }
    else
        echo "setup.sh: WordNet 3.0 is missing ($WORDNET_DIR/data.noun). Run as root:" >&2
        echo "    apt-get install --no-install-recommends wordnet-base" >&2
        echo "then run setup.sh again." >&2
        exit 1
    fi
fi

stamp=.venv/.setup-done
fingerprint=$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
    echo "setup.sh: .venv is up to date"
else
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    pip=(.venv/bin/python -m pip install --disable-pip-version-check)
    # The pins live in pyproject.toml only; print the one named requirement.
    pin() { .venv/bin/python -c 'import sys, tomllib, re
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(d for d in deps if re.split(r"[\[=<>!~ ]", d)[0] == sys.argv[1]))' "$1"; }
    # mmcv's setup.py imports pkg_resources, which setuptools >= 70 no longer ships.
    "${pip[@]}" 'setuptools<70' wheel
    "${pip[@]}" "$(pin torch)" "$(pin torchvision)"
    if ! .venv/bin/python -c 'import mmcv.ops' 2>/dev/null; then
        # Compiles mmcv's ops against the torch above (CUDA ops where a GPU and nvcc are present).
        MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            "${pip[@]}" --no-build-isolation "$(pin mmcv)"
    fi
    "${pip[@]}" -e '.[test]'
    # torch asks for setuptools >= 77, which pip installs with the project; but mmengine's package
    # lookups (mmdet:: configs) import pkg_resources at run time too, gone from setuptools >= 70.
    "${pip[@]}" 'setuptools<70'

    echo "$fingerprint" >"$stamp"
fi

# WordNet laid out as an NLTK corpus in the project's data directory (seconds; skipped when present).
.venv/bin/python -m embedded.wordnet
echo "setup.sh: done. Run the tests with: .venv/bin/python -m pytest"
