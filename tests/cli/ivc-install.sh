#!/usr/bin/env bash
# The installed host library as a user builds against it: cmake --install into a scratch
# prefix, then a tiny program compiled and linked with nothing but
# `pkg-config --cflags --libs libivc` (shared, then static), run once with no broker
# (ivc_ctx_open must say -ENOENT) and once against minivmm-broker started by hand, where
# two copies exchange a message both ways. Also checks minivmm-ivc was installed.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
: "${MINIVMM_BROKER:=$MINIVMM_BUILD_DIR/minivmm-broker}"
require_command pkg-config
require_command cc

scratch=$(mktemp -d)
broker=
cleanup() {
    [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT
prefix=$scratch/prefix
cmake --install "$MINIVMM_BUILD_DIR" --prefix "$prefix" --component libivc >"$scratch/install.log" 2>&1 ||
    die "cmake --install failed: $(tail -n 5 "$scratch/install.log")"
[ -x "$prefix/bin/minivmm-ivc" ] && pass "minivmm-ivc installed" || fail "no $prefix/bin/minivmm-ivc"
pcdir=$(dirname "$(find "$prefix" -name libivc.pc | head -n1)")
[ -f "$pcdir/libivc.pc" ] || die "no libivc.pc under $prefix"
export PKG_CONFIG_PATH=$pcdir

cat >"$scratch/hello.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <minivmm/ivc.h>

int main(int argc, char **argv)
{
    char why[256] = "", buf[64];
    struct ivc_ctx_opts opts = {.backend = IVC_HOST_POLL, .self_id = -1, .group = argv[1],
                                .why = why, .why_len = sizeof(why)};
    struct ivc_ctx *ctx;
    struct ivc_chan *chan;
    int err = ivc_ctx_open(&ctx, &opts);
    if (argc == 2) { /* no broker expected */
        printf("open: %d (%s)\n", err, why);
        return err == -ENOENT ? 0 : 1;
    }
    if (err) {
        printf("open: %s: %s\n", strerror(-err), why);
        return 1;
    }
    unsigned peer = ivc_ctx_self(ctx) == 0 ? 1 : 0;
    err = ivc_open(ctx, peer, 10000, &chan);
    if (!err)
        err = ivc_send(chan, argv[2], strlen(argv[2]), 10000);
    ssize_t len = err ? err : ivc_recv(chan, buf, sizeof(buf) - 1, 10000);
    if (len < 0) {
        printf("exchange: %s\n", strerror((int)-len));
        return 1;
    }
    buf[len] = '\0';
    printf("peer %u said %s\n", peer, buf);
    ivc_close(chan);
    ivc_ctx_close(ctx);
    return 0;
}
C
# A sanitized build's library needs the sanitizer runtimes in the program too.
extra=()
[ -n "${MINIVMM_SANITIZE_FLAGS:-}" ] && read -ra extra <<<"$MINIVMM_SANITIZE_FLAGS"
# shellcheck disable=SC2046
cc "${extra[@]}" -o "$scratch/hello-shared" "$scratch/hello.c" $(pkg-config --cflags --libs libivc) \
    -Wl,-rpath,"$(pkg-config --variable=libdir libivc)" 2>"$scratch/cc.log" ||
    die "cc with pkg-config (shared) failed: $(cat "$scratch/cc.log")"
# shellcheck disable=SC2046
cc "${extra[@]}" -static-libgcc -o "$scratch/hello-static" "$scratch/hello.c" \
    $(pkg-config --cflags libivc) "$(pkg-config --variable=libdir libivc)/libivc.a" \
    $(pkg-config --libs-only-other --static libivc) -lpthread 2>"$scratch/cc.log" ||
    die "cc against libivc.a failed: $(cat "$scratch/cc.log")"
loads=$(ldd "$scratch/hello-shared" 2>&1)
if grep -q "libivc.so.* => $prefix/" <<<"$loads"; then
    pass "the program uses the installed libivc.so"
else
    fail "the program does not load libivc.so from $prefix: $(grep -i ivc <<<"$loads")"
fi

export XDG_RUNTIME_DIR=$scratch/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
for kind in shared static; do
    out=$("$scratch/hello-$kind" nogroup 2>&1)
    expect_status 0 $? "$kind: ivc_ctx_open on a group without a broker is -ENOENT ($out)"
done

"$MINIVMM_BROKER" --no-sandbox hello >"$scratch/broker.log" 2>&1 &
broker=$!
wait_for_text "$scratch/broker.log" "socket " 10 || die "minivmm-broker never listened"
"$scratch/hello-shared" hello from-shared >"$scratch/a" 2>&1 &
first=$!
"$scratch/hello-static" hello from-static >"$scratch/b" 2>&1
expect_status 0 $? "static program exchanged a message"
wait "$first"
expect_status 0 $? "shared program exchanged a message"
expect_contains "$(cat "$scratch/a")" "said from-static" "the shared build got the static one's message"
expect_contains "$(cat "$scratch/b")" "said from-shared" "the static build got the shared one's message"
finish
