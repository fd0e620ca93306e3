#include "vmm/size.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int parse_size(const char *text, uint64_t *size)
{
    if (!text || !isdigit((unsigned char)*text))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;

    unsigned int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    default:
        return -EINVAL;
    }
    if (*end) {
        end++;
        if (strcmp(end, "") != 0 && strcasecmp(end, "B") != 0 && strcasecmp(end, "iB") != 0)
            return -EINVAL;
    }
    if (shift && value > (UINT64_MAX >> shift))
        return -ERANGE;
    *size = (uint64_t)value << shift;
    return 0;
}

void format_size(uint64_t size, char *text, size_t len)
{
    static const char units[] = "KMGT";
    int unit = -1;
    while (unit < 3 && size && !(size & 1023)) {
        size >>= 10;
        unit++;
    }
    if (unit < 0)
        snprintf(text, len, "%" PRIu64, size);
    else
        snprintf(text, len, "%" PRIu64 "%c", size, units[unit]);
}
