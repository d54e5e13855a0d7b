# Sourced by .ci/demo and .ci/test: makes sure a fresh machine has what the build needs.
#  - CMake >= 3.26 for the bundled static HDF5 (Debian 12 ships 3.25): taken from PyPI into a
#    venv under target/ unless the system one is new enough; exported as CMAKE for hdf5-metno-src.
#  - the wasm32-wasip2 target of the pinned toolchain (plugins).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

cmake_ok() {
  local v
  v=$("$1" --version 2>/dev/null | head -n1 | grep -oE '[0-9]+\.[0-9]+' | head -n1) || return 1
  [ -n "$v" ] && [ "$(printf '%s\n3.26\n' "$v" | sort -V | head -n1)" = "3.26" ]
}

if [ -n "${CMAKE:-}" ] && cmake_ok "$CMAKE"; then
  :
elif command -v cmake >/dev/null && cmake_ok "$(command -v cmake)"; then
  export CMAKE=$(command -v cmake)
else
  tools="$repo/target/tools-venv"
  if ! cmake_ok "$tools/bin/cmake"; then
    echo "larmon setup: installing CMake >= 3.26 from PyPI into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check 'cmake>=3.26'
  fi
  export CMAKE="$tools/bin/cmake"
fi

if command -v rustup >/dev/null; then
  # rust-toolchain.toml pins the toolchain; make sure it and the plugin target are installed.
  rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
fi
