#!/bin/sh
# Writes "[NR] = "name"," for every x86-64 system call the C library's headers know, so the
# sandbox's SIGSYS handler can name a denied call without allocating (libseccomp's
# resolver returns a strdup()ed string). Usage: syscall-names.sh CC OUTPUT
set -eu
echo '#include <sys/syscall.h>' | "$1" -E -dM -x c - |
    awk '$1 == "#define" && $2 ~ /^__NR_/ && $3 ~ /^[0-9]+$/ {
        sub(/^__NR_/, "", $2); printf "[%s] = \"%s\",\n", $3, $2 }' |
    sort -t'[' -k2 -n >"$2.tmp"
[ -s "$2.tmp" ] || { echo "syscall-names.sh: no __NR_ definitions from $1" >&2; exit 1; }
mv "$2.tmp" "$2"
