#!/usr/bin/env bash
# Sets up everything this project needs in .venv, from a fresh Debian machine with Python 3.11.
# Idempotent: a second run only checks (seconds). The slow step, compiling mmcv's ops (about
# 4 to 16 minutes on 2 cores, by the machine), happens once per machine and torch build: the wheel it makes is kept in
# the project's own wheel cache, keyed by everything the build depends on, never in pip's cache.
#   SETUP_MMCV_FROM_SOURCE=1 ./setup.sh    compile mmcv's ops even when a cached wheel exists (CI)
#   TRANSFER_GRIDS_WHEELS=DIR              where built wheels are kept (default ~/.cache/transfer-grids/wheels)
#   SETUP_TESTS=0 ./setup.sh               what a cluster node runs: no test tools, no Chromium (the Dockerfile)
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
    echo "setup.sh: needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}

# Debian packages: WordNet 3.0's database files (WORDNET_DIR: where another install put them) and Chromium,
# the headless browser in which the tests open the report page (CHROMIUM: another Chromium or Chrome binary).
export WORDNET_DIR=${WORDNET_DIR:-/usr/share/wordnet} CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
apt_install() {  # $1: the package, $2: what is missing, $3: the other way to provide it, $4: the package's own path
    if [ "$4" = yes ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y --no-install-recommends "$1" ||
            { apt-get update && apt-get install -y --no-install-recommends "$1"; }
    else
        echo "setup.sh: $2 Run as root:" >&2
        echo "    apt-get install --no-install-recommends $1" >&2
        echo "then run setup.sh again, or $3" >&2
        exit 1
    fi
}
own() { [ "$1" = "$2" ] && echo yes || echo no; }  # the path is the Debian package's: apt-get provides it
if [ ! -f "$WORDNET_DIR/data.noun" ]; then
    apt_install wordnet-base "WordNet 3.0 is missing ($WORDNET_DIR/data.noun)." \
        "set WORDNET_DIR to a folder holding WordNet 3.0's dict files." "$(own "$WORDNET_DIR" /usr/share/wordnet)"
fi
tests=${SETUP_TESTS:-1}
if [ "$tests" = 1 ] && [ ! -x "$CHROMIUM" ]; then
    apt_install chromium "Chromium, the browser the report page's test opens, is missing ($CHROMIUM)." \
        "set CHROMIUM to a Chromium or Chrome binary." "$(own "$CHROMIUM" /usr/bin/chromium)"
fi

venv_python=$PWD/.venv/bin/python
pip=("$venv_python" -m pip install --disable-pip-version-check)
mmcv_record=.venv/mmcv-build.json

# The pins live in pyproject.toml only; print the one named requirement.
pin() { "$venv_python" -c 'import sys, tomllib, re
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(d for d in deps if re.split(r"[\[=<>!~ ]", d)[0] == sys.argv[1]))' "$1"; }

# Everything a compiled mmcv depends on, as one name: mmcv, the torch it links against, CPU or CUDA
# ops (mmcv builds CUDA ops exactly when torch sees a GPU), the CUDA compiler and GPU architectures,
# Python and the processor. A wheel is reused only under the same key.
mmcv_build_key() {
    "$venv_python" - "$(pin mmcv)" <<'EOF'
import os, platform, subprocess, sys, torch
mmcv = sys.argv[1].replace("==", "-")
ops = "cpu"
if torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1":
    from torch.utils.cpp_extension import CUDA_HOME
    if CUDA_HOME is None:
        sys.exit(f"setup.sh: torch {torch.__version__} sees a GPU, so mmcv's ops must be compiled with CUDA, but "
                 f"no CUDA toolkit (nvcc) was found. Install the CUDA {torch.version.cuda} toolkit and set CUDA_HOME, "
                 "or hide the GPUs for a CPU-only build: CUDA_VISIBLE_DEVICES= ./setup.sh")
    nvcc = subprocess.run([os.path.join(CUDA_HOME, "bin", "nvcc"), "--version"], capture_output=True, text=True)
    release = nvcc.stdout.rsplit("release ", 1)[-1].split(",")[0]
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST") or "+".join(sorted(
        {"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}))
    ops = f"cuda{release}-sm{arch.replace(' ', '+').replace(';', '+')}"
print(f"{mmcv}-torch{torch.__version__}-{ops}-py{sys.version_info.major}.{sys.version_info.minor}-{platform.machine()}")
EOF
}

# Compiles mmcv's ops from its source distribution against the torch in .venv, printing progress,
# and leaves the wheel and a record of the build (what it compiled against) in $1; $2 is the build's key.
build_mmcv_wheel() {
    local out=$1 cuda_ops=false work=.venv/mmcv-build
    [[ $2 == *-cuda* ]] && cuda_ops=true  # the key says whether mmcv builds CUDA ops
    rm -rf "$work" && mkdir -p "$work"
    # Right before the build, because the build runs in this environment (--no-build-isolation,
    # to compile against its torch): mmcv's setup.py imports pkg_resources, which setuptools >= 70
    # lacks, and the torch install above may have upgraded setuptools. ninja compiles in parallel.
    "${pip[@]}" -q 'setuptools<70' wheel ninja
    "$venv_python" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
        --no-build-isolation --no-cache-dir -d "$work" "$(pin mmcv)"
    tar -xzf "$work"/mmcv-*.tar.gz -C "$work"
    local src total started=$SECONDS
    src=$(echo "$work"/mmcv-*/)
    total=$(cd "$src" && "$venv_python" -c 'import glob, sys
cuda = ["mmcv/ops/csrc/pytorch/cuda/*.cu", "mmcv/ops/csrc/pytorch/cuda/*.cpp"] if sys.argv[1] == "true" else []
print(sum(len(glob.glob(p)) for p in ["mmcv/ops/csrc/pytorch/*.cpp", "mmcv/ops/csrc/pytorch/cpu/*.cpp"] + cuda))' "$cuda_ops")
    export MAX_JOBS=${MAX_JOBS:-$(nproc)}
    echo "setup.sh: compiling mmcv's ops ($total files on $MAX_JOBS cores, log: $work/build.log)"
    MMCV_WITH_OPS=1 "$venv_python" -m pip wheel --disable-pip-version-check \
        --no-build-isolation --no-deps --no-cache-dir -w "$work/dist" "$src" >"$work/build.log" 2>&1 &
    local builder=$!
    while kill -0 "$builder" 2>/dev/null; do
        sleep 20
        echo "setup.sh:   $(find "$src" -name '*.o' | wc -l) of $total compiled, $((SECONDS - started)) s"
    done
    if ! wait "$builder"; then
        tail -n 40 "$work/build.log" >&2
        echo "setup.sh: mmcv's build failed; its whole log is $work/build.log" >&2
        exit 1
    fi
    "$venv_python" - "$work/dist/record.json" "$((SECONDS - started))" "$cuda_ops" <<'EOF'
import importlib.util, json, os, shutil, sys, time, torch
from importlib.metadata import version
json.dump({
    "torch": torch.__version__, "torch_cuda": torch.version.cuda,
    "setuptools": version("setuptools"), "pkg_resources": importlib.util.find_spec("pkg_resources") is not None,
    "cuda_ops": sys.argv[3] == "true",
    "compiler": shutil.which(os.environ.get("CXX", "c++")), "max_jobs": os.environ.get("MAX_JOBS"),
    "seconds": int(sys.argv[2]), "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}, open(sys.argv[1], "w"), indent=1)
EOF
    mkdir -p "$(dirname "$out")"
    rm -rf "$out.tmp" && mv "$work/dist" "$out.tmp" && rm -rf "$out" && mv "$out.tmp" "$out"
    rm -rf "$work"
}

install_mmcv() {
    local key cache
    key=$(mmcv_build_key)
    cache=${TRANSFER_GRIDS_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/transfer-grids/wheels}/$key
    if [ "${SETUP_MMCV_FROM_SOURCE:-0}" != 1 ] && [ -f "$mmcv_record" ] &&
        [ "$("$venv_python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["key"])' "$mmcv_record")" = "$key" ] &&
        "$venv_python" -c 'import mmcv.ops' 2>/dev/null; then
        return
    fi
    local source="project wheel cache $cache"
    if [ "${SETUP_MMCV_FROM_SOURCE:-0}" = 1 ] || ! ls "$cache"/mmcv-*.whl >/dev/null 2>&1; then
        build_mmcv_wheel "$cache" "$key"
        source="compiled from source in this set-up"
    fi
    "${pip[@]}" -q --no-deps --force-reinstall --no-cache-dir "$cache"/mmcv-*.whl
    "$venv_python" - "$cache/record.json" "$mmcv_record" "$key" "$source" <<'EOF'
import json, sys
record = json.load(open(sys.argv[1])) | {"key": sys.argv[3], "source": sys.argv[4], "wheel_dir": sys.argv[1].rsplit("/", 1)[0]}
json.dump(record, open(sys.argv[2], "w"), indent=1)
EOF
    echo "setup.sh: mmcv installed ($key, $source)"
}

stamp=.venv/.setup-done
fingerprint=$( (cat pyproject.toml setup.sh; echo "tests=$tests") | sha256sum | cut -d' ' -f1)
if [ "${SETUP_MMCV_FROM_SOURCE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
    echo "setup.sh: .venv is up to date"
else
    [ -x "$venv_python" ] || "$python" -m venv .venv
    "${pip[@]}" "$(pin torch)" "$(pin torchvision)"
    install_mmcv
    if [ "$tests" = 1 ]; then "${pip[@]}" -e '.[test]'; else "${pip[@]}" -e .; fi
    # The project install may upgrade setuptools again (torch asks for >= 77), but mmengine's
    # package lookups (mmdet:: configs) import pkg_resources at run time too.
    "${pip[@]}" -q 'setuptools<70'
    "$venv_python" -W ignore -c 'import mmcv.ops, mmdet, pkg_resources'
    echo "$fingerprint" >"$stamp"
fi

# WordNet laid out as an NLTK corpus in the project's data directory (seconds; skipped when present).
"$venv_python" -m formats.wordnet
echo "setup.sh: done. Run the tests with: .venv/bin/python -m pytest"
