/* Text helpers shared by the unit tests: header-only, because every tests/unit/test_*.c
 * is its own executable and nothing else in tests/unit is compiled. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka has no substring check; messages are asserted by the words that matter to a
 * user, not by their exact wording. */
#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *haystack_ = (haystack);                                                        \
        const char *needle_ = (needle);                                                            \
        if (!haystack_ || !strstr(haystack_, needle_))                                             \
            fail_msg("\"%s\" does not contain \"%s\"", haystack_ ? haystack_ : "(null)", needle_); \
    } while (0)

#define assert_not_contains(haystack, needle)                                                      \
    do {                                                                                           \
        const char *haystack_ = (haystack);                                                        \
        const char *needle_ = (needle);                                                            \
        if (haystack_ && strstr(haystack_, needle_))                                               \
            fail_msg("\"%s\" unexpectedly contains \"%s\"", haystack_, needle_);                   \
    } while (0)

/* A FILE that collects what is written to it, for code that prints to a stream. */
struct capture {
    FILE *file;
    char *text;
    size_t len;
};

static inline void capture_open(struct capture *cap)
{
    cap->text = NULL;
    cap->len = 0;
    cap->file = open_memstream(&cap->text, &cap->len);
    if (!cap->file)
        abort();
}

/* Flushes so text holds everything written so far; the stream stays usable. */
static inline const char *capture_text(struct capture *cap)
{
    fflush(cap->file);
    return cap->text;
}

static inline void capture_close(struct capture *cap)
{
    fclose(cap->file);
    free(cap->text);
    cap->file = NULL;
    cap->text = NULL;
}
