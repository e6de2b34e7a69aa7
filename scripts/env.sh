# Shared by scripts/demo, scripts/test and .ci/run.
# One target directory outside the clone, so every clone (and CI) reuses builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medledger-target}"

# Installs Debian packages ($2…) with apt-get when run as root; otherwise
# says which are missing and fails. $1 names what they are for.
install_missing() {
  local what="$1"
  shift
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $what: $*" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "missing system packages: $* (install them with your package manager, e.g. sudo apt-get install $*)" >&2
    return 1
  fi
}

# Installs the system packages the build needs when they are missing:
# a C/C++ toolchain (rustc links through `cc`; RocksDB is C++) and libclang
# (bindgen generates RocksDB's Rust bindings at build time).
install_build_prerequisites() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 \
     && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
    missing+=(libclang-dev)
  fi
  install_missing "build prerequisites" "${missing[@]}" || return 1
  # The patient app's SM2/SM3 module is Rust built to WebAssembly (node/build.rs).
  if ! rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null | xargs -r test -d; then
    if command -v rustup >/dev/null 2>&1; then
      rustup target add wasm32-unknown-unknown
    else
      echo "missing Rust's wasm32-unknown-unknown target (the app's SM2 module is built to it); install it with your Rust toolchain" >&2
      return 1
    fi
  fi
}

# What the patient app's tests need beyond the build: Node.js and npm (the
# app's BCS tests), Debian's Chromium and a CJK font (end-to-end tests and
# readable screenshots), and playwright-core from npm (client-sdk/web).
install_test_prerequisites() {
  local missing=()
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || missing+=(fonts-wqy-microhei)
  install_missing "test prerequisites" "${missing[@]}" || return 1
  (cd client-sdk/web && npm ci --no-audit --no-fund --silent)
}
