#!/usr/bin/env bash
# Assembles prebuilds/<platform>-<arch>/ for `npm pack` (it is the package's
# prepack script): the addon, self-contained, and the forkd binary.
#
# The addon links libzmq. Debian ships libzmq.a, but it pulls in gssapi,
# which has no static library, so the shared libraries the addon needs are
# copied beside it instead, each with an $ORIGIN runpath: the dynamic loader
# finds them there first, and a machine without libzmq5 loads the addon.
# Left out: the C and C++ runtime (glibc, libstdc++, libgcc_s), which every
# machine that runs Node has.
#
# forkd is copied as it is: it needs its Debian runtime packages
# (scripts/install-deps.sh --runtime), and `npx forkd` names the missing ones.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run build >/dev/null   # incremental: seconds when nothing changed
command -v patchelf >/dev/null || { echo "prebuild: patchelf is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

target="$(node -p 'process.platform + "-" + process.arch')"
out="prebuilds/$target"
rm -rf "$out"
mkdir -p "$out"
cp build/Release/fork_router.node "$out/"
cp build/bin/forkd "$out/"
strip --strip-unneeded "$out/fork_router.node" "$out/forkd"

runtime='^(linux-vdso|ld-linux|libc\.so|libm\.so|libstdc\+\+\.so|libgcc_s\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so)'
bundled=()
while read -r name path; do
  [[ "$name" =~ $runtime ]] && continue
  cp -L "$path" "$out/$name"
  chmod 0644 "$out/$name"
  patchelf --set-rpath '$ORIGIN' "$out/$name"
  bundled+=("$name")
  # Its licence, from the Debian package that installed it.
  real="$(readlink -f "$path")"
  pkg="$( (dpkg -S "$real" 2>/dev/null || dpkg -S "/usr${real#/usr}" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) | head -1 | cut -d: -f1)"
  if [[ -n "$pkg" && -f "/usr/share/doc/$pkg/copyright" ]]; then
    mkdir -p "$out/licenses"
    cp "/usr/share/doc/$pkg/copyright" "$out/licenses/$pkg.copyright"
  else
    echo "prebuild: no licence file found for $name ($real)" >&2
    exit 1
  fi
done < <(ldd "$out/fork_router.node" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
patchelf --set-rpath '$ORIGIN' "$out/fork_router.node"

# Every library the bundle needs must now resolve inside it or to the runtime.
if ldd "$out"/*.so* "$out/fork_router.node" | grep -q 'not found'; then
  echo "prebuild: a bundled library does not resolve:" >&2
  ldd "$out"/*.so* "$out/fork_router.node" | grep 'not found' >&2
  exit 1
fi
echo >&2 "prebuild: $out: fork_router.node with ${#bundled[@]} libraries (${bundled[*]}), forkd ($(du -sh "$out" | cut -f1) in all)"
