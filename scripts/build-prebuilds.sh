#!/usr/bin/env bash
# Builds the prebuilt binaries the npm package ships, from source, for
#
#   linux-x64 linux-arm64            glibc ≥ 2.28 (RHEL 8, Debian 10, Ubuntu 20.04 and newer)
#   linuxmusl-x64 linuxmusl-arm64    musl (Alpine)
#
# into build/prebuilds/out/<target>/ (and with --install, as npm pack's
# prepack does, into prebuilds/<target>/, which the package ships):
# fork_router.node, the addon, which needs only the
# C library (libzmq, libsodium and the C++ runtime are linked in), and, in
# the linux-<arch> directories only, forkd, linked fully static against musl:
# one binary per architecture runs on every Linux, glibc or musl.
#
#   bash scripts/build-prebuilds.sh                  all four targets
#   bash scripts/build-prebuilds.sh linux-x64 ...    some of them
#   bash scripts/build-prebuilds.sh --install        all four, then copied to prebuilds/
#
# The compiler is zig's clang (zig cc), which cross-compiles to each target
# against its own copy of each C library's headers and stubs, at the glibc
# version asked for. Every source is pinned by checksum in
# scripts/prebuilds/sources.txt: Debian's source packages (with Debian's
# patches applied), libpq as the pq-src crate packages it, zig from PyPI.
# Downloads, unpacked sources and each target's dependencies are cached
# under build/prebuilds/; delete it to start from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
here="$root/scripts/prebuilds"
cache="$root/build/prebuilds"
jobs="${FORK_JOBS:-$(nproc)}"
mkdir -p "$cache/dl" "$cache/src"
export ZIG_GLOBAL_CACHE_DIR="$cache/zig-cache" ZIG_LOCAL_CACHE_DIR="$cache/zig-cache"

log() { echo "prebuilds: $*" >&2; }
die() { echo "prebuilds: $*" >&2; exit 1; }

install=0
targets=()
for a in "$@"; do
  case "$a" in
    --install) install=1 ;;
    -*) die "unknown option '$a'" ;;
    *) targets+=("$a") ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(linux-x64 linux-arm64 linuxmusl-x64 linuxmusl-arm64)

# zig's name for each target, and the one forkd is built for.
zig_triple() {
  case "$1" in
    linux-x64) echo x86_64-linux-gnu.2.28 ;;
    linux-arm64) echo aarch64-linux-gnu.2.28 ;;
    linuxmusl-x64) echo x86_64-linux-musl ;;
    linuxmusl-arm64) echo aarch64-linux-musl ;;
    *) die "unknown target '$1' (known: linux-x64 linux-arm64 linuxmusl-x64 linuxmusl-arm64)" ;;
  esac
}
forkd_target() { case "$1" in *x64) echo linuxmusl-x64 ;; *arm64) echo linuxmusl-arm64 ;; esac; }

# --- sources ---------------------------------------------------------------

# source_field, check_sha256, fetch, unpack; build_librdkafka.
source "$here/sources.sh"

# zig, from its PyPI wheel.
zig_dir="$cache/zig-$(source_field zig 2)"
if [[ ! -x "$zig_dir/zig" ]]; then
  log "zig $(source_field zig 2)"
  wheel_dir="$cache/dl/zig-wheel"
  rm -rf "$wheel_dir" && mkdir -p "$wheel_dir"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2010_x86_64 \
    -d "$wheel_dir" "$(source_field zig 4 | sed 's/^pypi://')" || die "cannot download zig from PyPI"
  wheel="$(ls "$wheel_dir"/*.whl)"
  check_sha256 "$wheel" "$(source_field zig 3)"
  rm -rf "$zig_dir.tmp" && mkdir -p "$zig_dir.tmp"
  python3 -m zipfile -e "$wheel" "$zig_dir.tmp"
  chmod +x "$zig_dir.tmp/ziglang/zig"
  rm -rf "$zig_dir" && mv "$zig_dir.tmp/ziglang" "$zig_dir" && rm -rf "$zig_dir.tmp"
fi
zig="$zig_dir/zig"

# --- per target ------------------------------------------------------------

# Sets up $tools (compiler wrappers) and $prefix for zig triple $1.
setup_target() {
  triple="$1"
  tools="$cache/$triple/bin"; prefix="$cache/$triple/prefix"; work="$cache/$triple/work"
  mkdir -p "$tools" "$prefix/lib/pkgconfig" "$prefix/include" "$work"
  local flags="-fPIC -O2 -g0"
  # musl ≥ 1.2.4 declares stat64 and friends only on request (spdlog uses them).
  [[ "$triple" == *musl* ]] && flags+=" -D_LARGEFILE64_SOURCE"
  printf '#!/bin/sh\nexec "%s" cc -target %s %s "$@"\n' "$zig" "$triple" "$flags" >"$tools/cc"
  printf '#!/bin/sh\nexec "%s" c++ -target %s %s "$@"\n' "$zig" "$triple" "$flags" >"$tools/c++"
  printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$zig" >"$tools/ar"
  printf '#!/bin/sh\nexec "%s" ranlib "$@"\n' "$zig" >"$tools/ranlib"
  chmod +x "$tools"/*
  case "$triple" in
    x86_64-*) host=x86_64-linux-musl; cpu=x86_64 ;;
    aarch64-*) host=aarch64-linux-musl; cpu=aarch64 ;;
  esac
  [[ "$triple" == *gnu* ]] && host="${host%musl}gnu"
  export FORK_TARGET="$triple" FORK_TOOLS="$tools" FORK_PREFIX="$prefix"
  export CC="$tools/cc" CXX="$tools/c++" AR="$tools/ar" RANLIB="$tools/ranlib"
  export PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" PKG_CONFIG_PATH=""
}

cmake_dep() {  # cmake_dep SRC_DIR [cmake args...]
  local src="$1"; shift
  local b="$work/$(basename "$src")"
  rm -rf "$b"
  cmake -S "$src" -B "$b" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$here/toolchain.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON "$@" >"$b.log" 2>&1 || { tail -30 "$b.log"; die "configure $(basename "$src") failed"; }
  ninja -C "$b" -j"$jobs" install >>"$b.log" 2>&1 || { tail -30 "$b.log"; die "build $(basename "$src") failed"; }
}

# Builds dependency $1 for the current target once.
dep() {
  local name="$1" stamp="$cache/$triple/.$1-$(source_field "$1" 2)" t0=$SECONDS src
  [[ -f "$stamp" ]] && return 0
  src="$(unpack "$name")"
  log "$triple: $name"
  local b="$work/$name"
  case "$name" in
    zlib)
      rm -rf "$b" && cp -a "$src" "$b"
      (cd "$b" && ./configure --static --prefix="$prefix" && make -j"$jobs" install) >"$b.log" 2>&1 ||
        { tail -30 "$b.log"; die "zlib failed"; }
      ;;
    openssl)
      rm -rf "$b" && cp -a "$src" "$b"
      local os=linux-x86_64; [[ $cpu == aarch64 ]] && os=linux-aarch64
      # OPENSSLDIR /etc/ssl: where Debian, Ubuntu and Alpine keep
      # openssl.cnf and certs/ (forkd finds a CA bundle at run time).
      (cd "$b" && ./Configure "$os" no-shared no-tests no-module no-dso no-engine no-legacy \
         no-comp no-ssl3 no-weak-ssl-ciphers no-srp no-idea no-mdc2 no-rc5 no-camellia no-seed no-sm2 no-sm3 no-sm4 \
         --prefix="$prefix" --libdir=lib --openssldir=/etc/ssl CC="$CC" AR="$AR" RANLIB="$RANLIB" &&
       make -j"$jobs" build_libs && make install_dev) >"$b.log" 2>&1 || { tail -30 "$b.log"; die "openssl failed"; }
      ;;
    curl)
      rm -rf "$b" && cp -a "$src" "$b"
      (cd "$b" && ./configure --host="$host" --prefix="$prefix" --disable-shared --enable-static \
         --with-openssl="$prefix" --with-zlib="$prefix" --without-libpsl --without-brotli --without-zstd \
         --without-nghttp2 --without-libidn2 --without-librtmp --without-libssh2 --disable-ldap --disable-ldaps \
         --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
         --disable-smtp --disable-gopher --disable-mqtt --disable-manual --without-ca-bundle --without-ca-path \
         --disable-docs 2>/dev/null &&
       make -j"$jobs" -C lib && make -C lib install && make -C include install && make install-pkgconfigDATA) \
         >"$b.log" 2>&1 || { tail -30 "$b.log"; die "curl failed"; }
      ;;
    sqlite3)
      # The amalgamation is generated on the build machine (it needs tclsh),
      # then compiled for the target.
      rm -rf "$b" && mkdir -p "$b"
      (cd "$b" && CC=cc CXX=c++ AR=ar RANLIB=ranlib "$src/configure" --disable-tcl >/dev/null && make sqlite3.c) \
        >"$b.log" 2>&1 || { tail -30 "$b.log"; die "sqlite3 amalgamation failed"; }
      (cd "$b" && "$CC" -c sqlite3.c -o sqlite3.o -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_COLUMN_METADATA \
         -DSQLITE_DEFAULT_WAL_SYNCHRONOUS=1 -DSQLITE_OMIT_LOAD_EXTENSION && "$AR" rcs libsqlite3.a sqlite3.o &&
       cp libsqlite3.a "$prefix/lib/" && cp sqlite3.h sqlite3ext.h "$prefix/include/") >>"$b.log" 2>&1 ||
        { tail -30 "$b.log"; die "sqlite3 failed"; }
      ;;
    libsodium)
      rm -rf "$b" && cp -a "$src" "$b"
      (cd "$b" && { [[ -x configure ]] || autoreconf -fi; } &&
       ./configure --host="$host" --prefix="$prefix" --disable-shared --enable-static --disable-pie \
         --disable-dependency-tracking && make -j"$jobs" install) >"$b.log" 2>&1 ||
        { tail -30 "$b.log"; die "libsodium failed"; }
      ;;
    zeromq3)
      dep libsodium
      cmake_dep "$src" -DWITH_LIBSODIUM=ON -DWITH_LIBSODIUM_STATIC=ON -DENABLE_CURVE=ON -DBUILD_SHARED=OFF \
        -DBUILD_STATIC=ON -DBUILD_TESTS=OFF -DWITH_DOCS=OFF -DWITH_PERF_TOOL=OFF -DENABLE_DRAFTS=OFF \
        -DWITH_TLS=OFF -DWITH_NSS=OFF -DENABLE_WS=OFF -DWITH_GSSAPI_KRB5=OFF -DENABLE_CPACK=OFF \
        -Dsodium_INCLUDE_DIR="$prefix/include" -Dsodium_LIBRARY_RELEASE="$prefix/lib/libsodium.a"
      # Static users need libsodium too.
      sed -i 's|^Libs: .*|Libs: -L${libdir} -lzmq -lsodium -lpthread|' "$prefix/lib/pkgconfig/libzmq.pc"
      ;;
    yaml-cpp)
      cmake_dep "$src" -DYAML_CPP_BUILD_TESTS=OFF -DYAML_CPP_BUILD_TOOLS=OFF -DYAML_CPP_BUILD_CONTRIB=OFF \
        -DYAML_BUILD_SHARED_LIBS=OFF
      ;;
    re2)
      # Debian's source leaves out the generated Unicode tables; its build
      # makes them from the unicode-data package, as here.
      [[ -f "$src/re2/unicode_groups.cc" ]] ||
        (cd "$src" && make REBUILD_TABLES=1 re2/perl_groups.cc re2/unicode_casefold.cc re2/unicode_groups.cc) \
          >"$b.tables.log" 2>&1 || { tail -20 "$b.tables.log"; die "re2's Unicode tables failed (unicode-data installed?)"; }
      cmake_dep "$src" -DRE2_BUILD_TESTING=OFF
      [[ -f "$prefix/lib/pkgconfig/re2.pc" ]] ||
        printf 'prefix=%s\nName: re2\nDescription: re2\nVersion: 0\nCflags: -I${prefix}/include\nLibs: -L${prefix}/lib -lre2 -lpthread\n' \
          "$prefix" >"$prefix/lib/pkgconfig/re2.pc"
      ;;
    fmtlib) cmake_dep "$src" -DFMT_TEST=OFF -DFMT_DOC=OFF ;;
    spdlog) dep fmtlib; cmake_dep "$src" -DSPDLOG_FMT_EXTERNAL=ON -DSPDLOG_BUILD_EXAMPLE=OFF -DSPDLOG_BUILD_TESTS=OFF ;;
    cli11) cmake_dep "$src" -DCLI11_BUILD_TESTS=OFF -DCLI11_BUILD_EXAMPLES=OFF -DCLI11_BUILD_DOCS=OFF ;;
    cpp-httplib)
      # Header-only: the same httplib.h Debian compiles into a library.
      cp "$src/httplib.h" "$prefix/include/"
      printf 'prefix=%s\nName: cpp-httplib\nDescription: cpp-httplib\nVersion: 0.11.4\nCflags: -I${prefix}/include\nLibs: -lpthread\n' \
        "$prefix" >"$prefix/lib/pkgconfig/cpp-httplib.pc"
      ;;
    hiredis)
      # The synchronous client only, compiled as its Makefile does; headers
      # where Debian's libhiredis-dev puts them (<hiredis/hiredis.h>).
      # Debian's backport of the CVE-2021-32765 fix gives createArrayObject a
      # size_t count but leaves read.h's callback taking an int (gcc warns,
      # clang refuses): read.h gets the size_t that upstream's fix has.
      rm -rf "$b" && cp -a "$src" "$b"
      sed -i 's/void \*(\*createArray)(const redisReadTask\*, int);/void *(*createArray)(const redisReadTask*, size_t);/' \
        "$b/read.h"
      (cd "$b" && grep -q 'createArray)(const redisReadTask\*, size_t)' read.h &&
       for f in net hiredis sds read alloc; do "$CC" -std=c99 -c "$f.c" -o "$f.o" || exit 1; done &&
       "$AR" rcs libhiredis.a net.o hiredis.o sds.o read.o alloc.o && cp libhiredis.a "$prefix/lib/" &&
       mkdir -p "$prefix/include/hiredis" && cp hiredis.h read.h sds.h alloc.h async.h "$prefix/include/hiredis/") \
        >"$b.log" 2>&1 ||
        { tail -30 "$b.log"; die "hiredis failed"; }
      printf 'prefix=%s\nName: hiredis\nDescription: hiredis\nVersion: %s\nCflags: -I${prefix}/include\nLibs: -L${prefix}/lib -lhiredis\n' \
        "$prefix" "$(source_field hiredis 2)" >"$prefix/lib/pkgconfig/hiredis.pc"
      ;;
    librdkafka)
      dep zlib; dep openssl
      build_librdkafka "$src" "$b" "$prefix" -DCMAKE_TOOLCHAIN_FILE="$here/toolchain.cmake" -DOPENSSL_USE_STATIC_LIBS=TRUE
      ;;
    pq-src)
      dep openssl
      # libpq, src/common and src/port as pq-src's build.rs compiles them.
      local files=() f
      for f in strlcat strlcpy snprintf pg_crc32c_sb8 bsearch_arg chklocale inet_net_ntop noblock pg_bitutils \
               pg_strong_random pgcheckdir pgmkdirp pgsleep pgstrcasecmp pgstrsignal pqsignal qsort quotes strerror \
               tar explicit_bzero timingsafe_bcmp getpeereid; do files+=("$src/source/src/port/$f.c"); done
      for f in file_perm encnames base64 scram-common ip jsonapi kwlookup link-canary md5_common percentrepl \
               pg_get_line pg_lzcompress pg_prng pgfnames psprintf rmtree saslprep string stringinfo unicode_norm \
               username wait_error wchar fe_memutils restricted_token sprompt logging cryptohash_openssl \
               hmac_openssl; do files+=("$src/source/src/common/$f.c"); done
      for f in fe-auth-scram fe-auth fe-cancel fe-connect fe-exec fe-lobj fe-misc fe-print fe-protocol3 fe-secure \
               fe-trace fe-auth-oauth legacy-pqsignal libpq-events pqexpbuffer fe-secure-common \
               fe-secure-openssl; do files+=("$src/source/src/interfaces/libpq/$f.c"); done
      rm -rf "$b" && mkdir -p "$b/more_include"
      cp "$src/source/src/include/port/linux.h" "$b/more_include/pg_config_os.h"
      local pgv; pgv="$(source_field pq-src 2)"; pgv="${pgv#*+libpq-}"
      local major="${pgv%%.*}" minor="${pgv#*.}"
      local defs=(-DFRONTEND -D_GNU_SOURCE -DUSE_OPENSSL=1 -DHAVE_STRCHRNUL -DHAVE_STRSIGNAL
                  "-DPG_VERSION=\"$pgv\"" "-DPG_VERSION_NUM=$((major * 10000 + minor))"
                  "-DPG_VERSION_STR=\"PostgreSQL $pgv\"" "-DPG_MAJORVERSION=\"$major\""
                  "-DPG_MAJORVERSION_NUM=$major" "-DPG_MINORVERSION_NUM=$minor")
      [[ "$triple" == *musl* ]] && defs+=(-DSTRERROR_R_INT -DHAVE_TERMIOS_H)
      local incs=(-I"$src/source/src/port" -I"$src/source/src/include" -I"$src/additional_include"
                  -I"$b/more_include" -I"$prefix/include")
      (cd "$b" && ok=1 && for f in "${files[@]}"; do
         while (($(jobs -rp | wc -l) >= jobs)); do wait -n || ok=0; done
         "$CC" -c "$f" -o "$(basename "$f" .c).o" -w "${defs[@]}" "${incs[@]}" &
       done && while (($(jobs -rp | wc -l) > 0)); do wait -n || ok=0; done && ((ok)) &&
       "$AR" rcs libpq.a ./*.o && cp libpq.a "$prefix/lib/" &&
       cp "$src/source/src/interfaces/libpq/libpq-fe.h" "$src/source/src/interfaces/libpq/libpq-events.h" \
          "$src/source/src/include/postgres_ext.h" "$src/additional_include/pg_config_ext.h" "$prefix/include/") \
        >"$b.log" 2>&1 || { tail -30 "$b.log"; die "libpq failed"; }
      printf 'prefix=%s\nName: libpq\nDescription: libpq\nVersion: %s\nCflags: -I${prefix}/include\nLibs: -L${prefix}/lib -lpq -lssl -lcrypto -lpthread\n' \
        "$prefix" "$pgv" >"$prefix/lib/pkgconfig/libpq.pc"
      ;;
    *) die "no recipe for $name" ;;
  esac
  touch "$stamp"
  log "$triple: $name done in $((SECONDS - t0)) s"
}

# Builds forkd (when $2 is set) and the addon for the current target.
build_fork() {
  local with_forkd="$1" b="$cache/$triple/fork"
  local addon_api; addon_api="$(node -p "require('node-addon-api').include.replace(/\"/g, '')")"
  local napi_headers; napi_headers="$(node -p "require('node-api-headers').include_dir")"
  # forkd's allocator, compiled into it from source (sidecar/CMakeLists.txt).
  local mimalloc=(); [[ "$with_forkd" == ON ]] && mimalloc=(-DFORK_MIMALLOC_SRC="$(unpack mimalloc)")
  cmake -S "$root" -B "$b" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$here/toolchain.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DFORK_PREBUILD=ON -DFORK_BUILD_TESTS=OFF -DFORK_BUILD_SIDECAR="$with_forkd" -DFORK_BUILD_ADDON=ON "${mimalloc[@]}" \
    -DFORK_NODE_API_HEADERS="$napi_headers" -DFORK_NODE_ADDON_API="$addon_api" >"$b.log" 2>&1 ||
    { tail -40 "$b.log"; die "configure fork for $triple failed"; }
  local goals=(fork_addon); [[ "$with_forkd" == ON ]] && goals+=(forkd)
  ninja -C "$b" -j"$jobs" "${goals[@]}" >>"$b.log" 2>&1 || { grep -B2 -A12 'error' "$b.log" | head -60; die "build fork for $triple failed"; }
}

t_start=$SECONDS
# forkd first (static musl, one per architecture), then each addon.
declare -A forkd_built=()
for target in "${targets[@]}"; do
  zig_triple "$target" >/dev/null
  ft="$(forkd_target "$target")"
  [[ -n "${forkd_built[$ft]:-}" ]] && continue
  setup_target "$(zig_triple "$ft")"
  for d in zlib openssl curl sqlite3 zeromq3 yaml-cpp re2 spdlog cli11 cpp-httplib hiredis librdkafka pq-src; do dep "$d"; done
  t0=$SECONDS; build_fork ON; log "$triple: forkd and addon built in $((SECONDS - t0)) s"
  forkd_built[$ft]="$cache/$triple/fork"
done
for target in "${targets[@]}"; do
  setup_target "$(zig_triple "$target")"
  if [[ "$triple" == *gnu* ]]; then
    dep zeromq3
    t0=$SECONDS; build_fork OFF; log "$triple: addon built in $((SECONDS - t0)) s"
  fi
  out="$cache/out/$target"
  rm -rf "$out" && mkdir -p "$out"
  cp "$cache/$triple/fork/addon/fork_router.node" "$out/"
  # forkd is the same static binary for glibc and musl: shipped once per
  # architecture, in linux-<arch>/, where the loader looks for both.
  [[ "$target" == linux-* ]] && cp "${forkd_built[$(forkd_target "$target")]}/bin/forkd" "$out/"
  [[ -f "$out/forkd" ]] && chmod 0755 "$out/forkd"
  chmod 0644 "$out/fork_router.node"
  mkdir -p "$out/licenses"
  for d in zlib openssl curl sqlite3 libsodium zeromq3 yaml-cpp re2 fmtlib spdlog cli11 cpp-httplib hiredis; do
    cp "$(unpack "$d")/debian/copyright" "$out/licenses/$d.copyright"
  done
  [[ -f "$out/forkd" ]] && cp "$(unpack mimalloc)/debian/copyright" "$out/licenses/mimalloc.copyright"
  cp "$(unpack librdkafka)/librdkafka/LICENSES.txt" "$out/licenses/librdkafka.license"
  cp "$here/libpq.COPYRIGHT" "$out/licenses/libpq.copyright"
  # What zig links in: LLVM's libc++, libc++abi and libunwind, and musl.
  for f in libcxx libcxxabi libunwind; do cp "$zig_dir/lib/$f/LICENSE.TXT" "$out/licenses/$f.license"; done
  cp "$zig_dir/lib/libc/musl/COPYRIGHT" "$out/licenses/musl.copyright"
  log "$target: $(du -sh "$out" | cut -f1) ($(du -h "$out/fork_router.node" | cut -f1) addon$([[ -f "$out/forkd" ]] && echo ", $(du -h "$out/forkd" | cut -f1) forkd"))"
done
if ((install)); then
  for target in "${targets[@]}"; do
    rm -rf "$root/prebuilds/$target" && mkdir -p "$root/prebuilds" && cp -a "$cache/out/$target" "$root/prebuilds/"
  done
  log "installed into prebuilds/: ${targets[*]}"
fi
log "done in $((SECONDS - t_start)) s"
