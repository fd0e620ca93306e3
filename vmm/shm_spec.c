#include "vmm/shm_spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/hugepages.h"
#include "vmm/reason.h"
#include "vmm/size.h"

bool shm_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SHM_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* The hugepage size is one x86 offers, and the memory is a whole number of its pages. */
static int hugepages_fit(const struct shm_spec *spec, char *why, size_t why_len)
{
    if (!spec->hugepage_size)
        return 0;
    char page[32], size[32];
    format_size(spec->hugepage_size, page, sizeof(page));
    if (!hugepage_size_valid(spec->hugepage_size)) {
        reason_set(why, why_len, "hugepages=%s: expected 2M or 1G", page);
        return -EINVAL;
    }
    /* Both are powers of two: a multiple is anything at least as large. */
    if (spec->size < spec->hugepage_size) {
        format_size(spec->size, size, sizeof(size));
        reason_set(why, why_len,
                   "size %s is not a multiple of the %s hugepage size (hugepages=%s needs "
                   "size=%s or more)",
                   size, page, page, page);
        return -EINVAL;
    }
    return 0;
}

int shm_spec_check(const struct shm_spec *spec, char *why, size_t why_len)
{
    if (!shm_name_valid(spec->name)) {
        reason_set(why, why_len,
                   "group name '%s' must be 1 to %d characters of A-Z a-z 0-9 . _ - and must not "
                   "start with '.'",
                   spec->name, SHM_NAME_MAX);
        return -EINVAL;
    }
    if (spec->size < SHM_MIN_SIZE || spec->size > SHM_MAX_SIZE) {
        reason_set(why, why_len, "size %" PRIu64 " is out of range (%lluK to %lluG)", spec->size,
                   SHM_MIN_SIZE >> 10, SHM_MAX_SIZE >> 30);
        return -EINVAL;
    }
    if (spec->size & (spec->size - 1)) {
        reason_set(why, why_len, "size %" PRIu64 " is not a power of two (a PCI BAR must be)",
                   spec->size);
        return -EINVAL;
    }
    if (spec->vectors > SHM_MAX_VECTORS) {
        reason_set(why, why_len, "vectors %u is out of range (0 to %d)", spec->vectors,
                   SHM_MAX_VECTORS);
        return -EINVAL;
    }
    return hugepages_fit(spec, why, why_len);
}

int shm_spec_parse(const char *text, struct shm_spec *spec, char *why, size_t why_len)
{
    memset(spec, 0, sizeof(*spec));
    spec->size = SHM_DEFAULT_SIZE;
    spec->vectors = SHM_DEFAULT_VECTORS;
    spec->sandbox = true;
    if (!text) {
        reason_set(why, why_len, "missing group name");
        return -EINVAL;
    }

    size_t name_len = strcspn(text, ",");
    if (name_len == 0) {
        reason_set(why, why_len, "missing group name (NAME[,size=SIZE][,vectors=N])");
        return -EINVAL;
    }
    if (name_len > SHM_NAME_MAX) {
        reason_set(why, why_len, "group name is %zu characters long, more than %d", name_len,
                   SHM_NAME_MAX);
        return -EINVAL;
    }
    memcpy(spec->name, text, name_len);
    spec->name[name_len] = '\0';
    if (!shm_name_valid(spec->name))
        return shm_spec_check(spec, why, why_len);

    bool have_size = false, have_vectors = false, have_portio = false, have_hugepages = false;
    const char *item = text + name_len;
    while (*item == ',') {
        item++;
        size_t len = strcspn(item, ",");
        char buf[128];
        if (len == 0) {
            reason_set(why, why_len, "empty item after ',' (NAME[,size=SIZE][,vectors=N])");
            return -EINVAL;
        }
        if (len >= sizeof(buf)) {
            reason_set(why, why_len, "item '%.20s...' is too long", item);
            return -EINVAL;
        }
        memcpy(buf, item, len);
        buf[len] = '\0';
        item += len;

        char *value = strchr(buf, '=');
        if (!value) {
            reason_set(why, why_len,
                       "'%s' is not KEY=VALUE (known keys: size, vectors, hugepages, portio)", buf);
            return -EINVAL;
        }
        *value++ = '\0';
        if (strcmp(buf, "size") == 0) {
            if (have_size) {
                reason_set(why, why_len, "size is given twice");
                return -EINVAL;
            }
            have_size = true;
            int ret = parse_size(value, &spec->size);
            if (ret == -EINVAL) {
                reason_set(why, why_len, "size '%s' is not a size (for example 64K, 4M or 1G)",
                           value);
                return -EINVAL;
            }
            if (ret < 0 || spec->size < SHM_MIN_SIZE || spec->size > SHM_MAX_SIZE) {
                reason_set(why, why_len, "size '%s' is out of range (%lluK to %lluG)", value,
                           SHM_MIN_SIZE >> 10, SHM_MAX_SIZE >> 30);
                return -EINVAL;
            }
            if (spec->size & (spec->size - 1)) {
                reason_set(why, why_len, "size '%s' is not a power of two (a PCI BAR must be)",
                           value);
                return -EINVAL;
            }
        } else if (strcmp(buf, "vectors") == 0) {
            if (have_vectors) {
                reason_set(why, why_len, "vectors is given twice");
                return -EINVAL;
            }
            have_vectors = true;
            char *end;
            errno = 0;
            unsigned long n = strtoul(value, &end, 10);
            if (!*value || *value < '0' || *value > '9' || *end || errno || n > SHM_MAX_VECTORS) {
                reason_set(why, why_len, "vectors '%s': expected a number from 0 to %d", value,
                           SHM_MAX_VECTORS);
                return -EINVAL;
            }
            spec->vectors = (unsigned int)n;
        } else if (strcmp(buf, "portio") == 0) {
            if (have_portio) {
                reason_set(why, why_len, "portio is given twice");
                return -EINVAL;
            }
            have_portio = true;
            if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
                reason_set(why, why_len, "portio '%s': expected on or off", value);
                return -EINVAL;
            }
            spec->portio = strcmp(value, "on") == 0;
        } else if (strcmp(buf, "hugepages") == 0) {
            if (have_hugepages) {
                reason_set(why, why_len, "hugepages is given twice");
                return -EINVAL;
            }
            have_hugepages = true;
            if (parse_size(value, &spec->hugepage_size) < 0 ||
                !hugepage_size_valid(spec->hugepage_size)) {
                reason_set(why, why_len, "hugepages '%s': expected 2M or 1G", value);
                return -EINVAL;
            }
        } else {
            reason_set(why, why_len,
                       "unknown key '%s' (known keys: size, vectors, hugepages, portio)", buf);
            return -EINVAL;
        }
    }
    return hugepages_fit(spec, why, why_len);
}
