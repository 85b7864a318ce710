#define _GNU_SOURCE
#include <fcntl.h>
#include "CStackVaultShims.h"

int CStackVaultShims_sync_file_range(int fd, int64_t offset, int64_t length, int wait) {
    unsigned int flags = SYNC_FILE_RANGE_WRITE;
    if (wait) flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
    return sync_file_range(fd, (off64_t)offset, (off64_t)length, flags);
}
