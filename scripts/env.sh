# Shared by scripts/demo, scripts/test and .ci/run.
# One target directory outside the clone, so every clone (and CI) reuses builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medledger-target}"

# Installs the system packages the build needs when they are missing.
# Today that is only a C toolchain (rustc links through `cc`);
# RocksDB will add clang and libclang-dev here.
install_build_prerequisites() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
      echo "missing system packages: ${missing[*]} (install them with your package manager)" >&2
      return 1
    fi
  fi
}
