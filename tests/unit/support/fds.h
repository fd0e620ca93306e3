/* File descriptor checks shared by the unit tests and the fuzz harnesses (tests/fuzz sees
 * tests/unit too): a leak shows as a count that grew, an fd closed too early as one that is
 * no longer open. Header-only (see support/text.h). */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool test_fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* The fds this process has open, the listing's own not counted. Aborts when /proc/self/fd
 * cannot be listed: a count that cannot be taken must not compare equal to another. */
static inline int test_open_fd_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        fprintf(stderr, "opendir /proc/self/fd: %s\n", strerror(errno));
        abort();
    }
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        if (entry->d_name[0] != '.' && atoi(entry->d_name) != dirfd(dir))
            n++;
    closedir(dir);
    return n;
}
