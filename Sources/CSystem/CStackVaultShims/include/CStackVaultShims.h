#pragma once
// Typed, non-variadic wrappers around libcurl's variadic calls, which Swift cannot call directly.
#include <curl/curl.h>

typedef size_t (*CCurl_data_callback)(char *_Nonnull data, size_t size, size_t nmemb, void *_Nullable userdata);
typedef int (*CCurl_xferinfo_callback)(void *_Nullable userdata, curl_off_t dltotal, curl_off_t dlnow,
                                       curl_off_t ultotal, curl_off_t ulnow);

CURLcode CCurl_easy_setopt_long(CURL *_Nonnull handle, CURLoption option, long value);
CURLcode CCurl_easy_setopt_off_t(CURL *_Nonnull handle, CURLoption option, curl_off_t value);
CURLcode CCurl_easy_setopt_string(CURL *_Nonnull handle, CURLoption option, const char *_Nullable value);
CURLcode CCurl_easy_setopt_pointer(CURL *_Nonnull handle, CURLoption option, void *_Nullable value);
CURLcode CCurl_easy_setopt_slist(CURL *_Nonnull handle, CURLoption option, struct curl_slist *_Nullable value);
CURLcode CCurl_easy_setopt_data_callback(CURL *_Nonnull handle, CURLoption option, CCurl_data_callback _Nullable cb);
CURLcode CCurl_easy_setopt_xferinfo_callback(CURL *_Nonnull handle, CCurl_xferinfo_callback _Nullable cb);

CURLcode CCurl_easy_getinfo_long(CURL *_Nonnull handle, CURLINFO info, long *_Nonnull value);
CURLcode CCurl_easy_getinfo_off_t(CURL *_Nonnull handle, CURLINFO info, curl_off_t *_Nonnull value);

/// Value that a read callback returns to abort the transfer.
size_t CCurl_readfunc_abort(void);

// Page-cache control for streamed files (Linux `sync_file_range(2)`, which Swift's Glibc module does not export).
#include <stdint.h>

/// Starts write-back of the dirty pages of `length` bytes at `offset` (0: to the end of the file) without waiting
/// (`SYNC_FILE_RANGE_WRITE`); with `wait` non-zero, also waits for write-back already under way before and for this
/// one after (`SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER`). Returns 0, or -1
/// with `errno` set.
int CStackVaultShims_sync_file_range(int fd, int64_t offset, int64_t length, int wait);
