#pragma once
#include <archive.h>
#include <archive_entry.h>
// flistxattr/fremovexattr for the disk extractor (Core/Tar/DiskTarExtractor), which Glibc's Swift module lacks.
#include <sys/xattr.h>
