#include "vmm/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mapped_file_open(struct mapped_file *file, const char *path)
{
    file->data = NULL;
    file->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int ret = 0;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        ret = -EISDIR;
    } else if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
    } else if (st.st_size > 0) {
        void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            ret = -errno;
        } else {
            file->data = data;
            file->size = (size_t)st.st_size;
        }
    }
    close(fd);
    return ret;
}

void mapped_file_close(struct mapped_file *file)
{
    if (file->data)
        munmap((void *)file->data, file->size);
    file->data = NULL;
    file->size = 0;
}
