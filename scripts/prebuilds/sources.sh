# Sourced by scripts/build-prebuilds.sh and scripts/librdkafka.sh: the pinned
# sources of scripts/prebuilds/sources.txt, fetched, checked and unpacked
# once under $cache, and the recipe for librdkafka, which both the prebuilt
# forkd and a forkd built from source link. The caller sets $here (this
# directory), $cache, $jobs and a die function.

source_field() {  # source_field NAME COLUMN
  awk -v n="$1" -v c="$2" '!/^#/ && $1 == n { print $c }' "$here/sources.txt"
}

check_sha256() {  # check_sha256 FILE SHA256
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  [[ "$got" == "$2" ]] || die "$(basename "$1"): sha256 $got, expected $2 (scripts/prebuilds/sources.txt)"
}

fetch() {  # fetch URL FILE
  [[ -s "$2" ]] && return 0
  curl -fsSL --retry 3 -o "$2.part" "$1" || die "cannot download $1"
  mv "$2.part" "$2"
}

# Unpacks source NAME once; prints its directory.
unpack() {
  local name="$1" version sha url dir
  version="$(source_field "$name" 2)"; sha="$(source_field "$name" 3)"; url="$(source_field "$name" 4)"
  [[ -n "$url" ]] || die "no source '$name' in scripts/prebuilds/sources.txt"
  dir="$cache/src/$name-$version"
  if [[ ! -f "$dir/.unpacked" ]]; then
    rm -rf "$dir"
    case "$url" in
      *.dsc)
        local dsc base
        dsc="$cache/dl/$(basename "$url")"; base="$(dirname "$url")"
        fetch "$url" "$dsc"
        check_sha256 "$dsc" "$sha"
        # The files the .dsc lists; dpkg-source checks them against it.
        for f in $(awk '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 } on { print $3 }' "$dsc"); do
          fetch "$base/$f" "$cache/dl/$f"
        done
        (cd "$cache/dl" && dpkg-source --no-check --require-strong-checksums -x "$(basename "$dsc")" "$dir" >/dev/null) ||
          die "dpkg-source could not unpack $(basename "$dsc")"
        ;;
      https://static.crates.io/*)
        local crate="$cache/dl/$name-$version.crate"
        fetch "$url" "$crate"
        check_sha256 "$crate" "$sha"
        mkdir -p "$dir" && tar -xzf "$crate" -C "$dir" --strip-components=1
        ;;
      *) die "$name: no way to fetch $url" ;;
    esac
    touch "$dir/.unpacked"
  fi
  echo "$dir"
}

# build_librdkafka SRC WORK PREFIX [cmake args...]: librdkafka (the C library
# alone, not librdkafka++), static and position independent, into PREFIX
# with an rdkafka.pc as librdkafka-dev names it (<librdkafka/rdkafka.h>).
#
# TLS with the OpenSSL found (the caller's arguments say which), SASL PLAIN,
# SCRAM and OAUTHBEARER built in (they need only OpenSSL), gzip by zlib, lz4
# and snappy bundled. No Cyrus SASL (GSSAPI), zstd or libcurl (OIDC token
# fetching), no plugins (no dlopen in a static binary): the same features
# in every forkd, so the tests run what ships. CMake's WITH_SASL means Cyrus
# SASL and would take SCRAM and OAUTHBEARER with it: those are asked for
# alone. CMake's config.h defines WITH_SASL_CYRUS as 0, which
# builtin.features takes for GSSAPI (it asks `defined`): the line goes, so
# sasl_gssapi is not claimed. What a static link needs is in Libs, not
# Libs.private: pkg_check_modules' IMPORTED_TARGET reads only Libs.
build_librdkafka() {
  local src="$1/librdkafka" b="$2" prefix="$3" version
  shift 3
  version="$(awk '/^#define RD_KAFKA_VERSION / { print $3 }' "$src/src/rdkafka.h")"
  version="$((version >> 24 & 255)).$((version >> 16 & 255)).$((version >> 8 & 255))"
  rm -rf "$b" && cp -a "$src" "$b"
  (cmake -S "$b" -B "$b/build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" \
     -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DRDKAFKA_BUILD_STATIC=ON \
     -DRDKAFKA_BUILD_EXAMPLES=OFF -DRDKAFKA_BUILD_TESTS=OFF -DWITH_SSL=ON \
     -DWITH_ZLIB=ON -DWITH_SASL=OFF -DWITH_SASL_SCRAM=ON -DWITH_SASL_OAUTHBEARER=ON -DWITH_ZSTD=OFF \
     -DENABLE_LZ4_EXT=OFF -DWITH_CURL=OFF -DWITH_PLUGINS=OFF &&
   grep -q '^#define WITH_SSL 1' "$b/build/generated/config.h" &&
   grep -q '^#define WITH_SASL_SCRAM 1' "$b/build/generated/config.h" &&
   grep -q '^#define WITH_ZLIB 1' "$b/build/generated/config.h" &&
   sed -i '/^#define WITH_SASL_CYRUS 0$/d' "$b/build/generated/config.h" &&
   ! grep -q WITH_SASL_CYRUS "$b/build/generated/config.h" &&
   ninja -C "$b/build" -j"$jobs" rdkafka &&
   mkdir -p "$prefix/lib/pkgconfig" "$prefix/include/librdkafka" && cp "$b/build/src/librdkafka.a" "$prefix/lib/" &&
   cp "$b/src/rdkafka.h" "$b/src/rdkafka_mock.h" "$prefix/include/librdkafka/") \
    >"$b.log" 2>&1 || { tail -30 "$b.log" >&2; die "librdkafka failed (log: $b.log)"; }
  printf 'prefix=%s\nName: rdkafka\nDescription: The Apache Kafka C library (static)\nVersion: %s\nCflags: -I${prefix}/include -DLIBRDKAFKA_STATICLIB\nLibs: -L${prefix}/lib -lrdkafka -lssl -lcrypto -lz -lpthread -lm\n' \
    "$prefix" "$version" >"$prefix/lib/pkgconfig/rdkafka.pc"
}
