#!/usr/bin/env bash
# Makes build/arm64-sysroot/: Debian bookworm's arm64 Node (the nodejs and
# libnode108 packages and the libraries they need, down to libc6) unpacked
# with dpkg-deb -x, for running the arm64 prebuilds under qemu user mode:
#
#   qemu-aarch64-static -L build/arm64-sysroot build/arm64-sysroot/usr/bin/node -e 'console.log(process.arch)'
#
# The .debs come from apt (arm64 is added to dpkg's foreign architectures,
# which needs root) and are kept in build/arm64-sysroot.debs/. A sysroot
# whose node already runs is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
sysroot="$PWD/build/arm64-sysroot"
debs="$PWD/build/arm64-sysroot.debs"

log() { echo "arm64-sysroot: $*" >&2; }
die() { echo "arm64-sysroot: $*" >&2; exit 1; }

command -v qemu-aarch64-static >/dev/null ||
  die "qemu-aarch64-static is missing (scripts/install-deps.sh installs qemu-user-static)"

works() {
  [[ -x "$sysroot/usr/bin/node" ]] &&
    [[ "$(qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/node" -e 'console.log(process.arch)' 2>/dev/null)" == arm64 ]]
}
if works; then
  log "$sysroot: node $(qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/node" --version) (arm64) runs"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "adding arm64 to dpkg's architectures"
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
fi
if ! apt-cache show libnode108:arm64 >/dev/null 2>&1; then
  "${sudo_cmd[@]}" apt-get update -qq
  apt-cache show libnode108:arm64 >/dev/null 2>&1 || die "apt knows no libnode108:arm64 (is this Debian bookworm?)"
fi

# The dependency closure of nodejs:arm64 (Depends and Pre-Depends): its arm64
# packages, and the arch-all JavaScript modules libnode108 loads its
# externalized builtins from (node-acorn, node-cjs-module-lexer, node-undici
# and what they need). A name without :arm64 that is not arch-all is the
# host's own package (node-acorn depends on `nodejs`): left out.
# (grep reads all of apt-cache's output: with -q it could stop early, and
# pipefail would then see apt-cache die of SIGPIPE and answer "not arch-all".)
arch_all() { apt-cache show --no-all-versions "$1" 2>/dev/null | grep -x 'Architecture: all' >/dev/null; }
declare -A seen=([nodejs:arm64]=1)
pkgs=(nodejs:arm64)
queue=(nodejs:arm64)
while ((${#queue[@]} > 0)); do
  next=()
  while read -r name; do
    [[ -n "${seen[$name]:-}" ]] && continue
    seen[$name]=1
    if [[ "$name" == *:arm64 ]] || arch_all "$name"; then
      pkgs+=("$name")
      next+=("$name")
    fi
  done < <(
    apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "${queue[@]}" |
      awk '/^ [ |](Pre)?Depends: / { dep = $2; if (dep !~ /^</) print dep; next }
           /^    [^ ]/ { print $1 }'
  )
  queue=("${next[@]}")
done
printf '%s\n' "${pkgs[@]}" | grep -qx 'libnode108:arm64' ||
  die "the candidate nodejs:arm64 does not depend on libnode108 (another repository's nodejs?): ${pkgs[*]}"

mkdir -p "$debs"
deb_glob() { if [[ "$1" == *:arm64 ]]; then echo "$debs/${1%:arm64}_*_arm64.deb"; else echo "$debs/$1_*_all.deb"; fi; }
missing=()
for p in "${pkgs[@]}"; do
  compgen -G "$(deb_glob "$p")" >/dev/null || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  log "downloading ${missing[*]}"
  # _apt cannot write into a root-owned build tree; apt then downloads as root, which is fine here.
  (cd "$debs" && apt-get download -qq "${missing[@]}" 2>&1 | grep -v 'unsandboxed as root' >&2 || true)
  for p in "${missing[@]}"; do
    compgen -G "$(deb_glob "$p")" >/dev/null || die "apt-get download $p failed"
  done
fi

rm -rf "$sysroot.tmp" && mkdir -p "$sysroot.tmp"
for p in "${pkgs[@]}"; do
  # The newest .deb of each package, should the cache hold several.
  deb="$(ls -v $(deb_glob "$p") | tail -1)"
  dpkg-deb -x "$deb" "$sysroot.tmp"
done
rm -rf "$sysroot" && mv "$sysroot.tmp" "$sysroot"
works || die "unpacked ${#pkgs[@]} packages, but $sysroot/usr/bin/node does not run under qemu-aarch64-static"
log "$sysroot: node $(qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/node" --version) (arm64) from ${#pkgs[@]} packages"
