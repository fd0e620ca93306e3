#!/usr/bin/env bash
# The same kernel as an uncompressed vmlinux ELF (taken out of the bzImage through the
# setup header's payload_offset/payload_length, as scripts/extract-vmlinux does) boots
# too, through the ELF loader.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-lib.sh"
require_guest_image
require_command xz

bzimage=$GUEST_IMAGE_DIR/bzImage
vmlinux=$MINIVMM_BUILD_DIR/test-vmlinux
le32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
setup_sects=$(od -An -t u1 -j $((0x1f1)) -N 1 "$bzimage" | tr -d ' ')
[ "$setup_sects" -eq 0 ] && setup_sects=4
offset=$(( (setup_sects + 1) * 512 + $(le32 "$bzimage" $((0x248))) ))
length=$(le32 "$bzimage" $((0x24c)))
dd if="$bzimage" iflag=skip_bytes,count_bytes skip="$offset" count="$length" bs=1M status=none |
    xz -dc --single-stream >"$vmlinux" 2>/dev/null ||
    die "the bzImage payload is not xz-compressed; this test knows only xz"
trap 'rm -f "$vmlinux"' EXIT

run_guest 280 --kernel "$vmlinux" --initrd "$GUEST_IMAGE_DIR/initramfs.cpio.gz" \
    --append "minivmm.run=guest-info,--exit,7"
echo "$guest_out" | grep -v '^\['
expect_status 7 "$guest_status" "vmlinux guest-chosen status"
expect_contains "$guest_out" "init: running guest-info" "vmlinux reached userspace"
finish
