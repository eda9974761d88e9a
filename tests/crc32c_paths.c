/* crc32c_paths.c - both implementations of host/cpu/crc32c.c under their own
 * names, so test_crc32c.cpp can check the table path on machines whose CPU
 * would always take the SSE4.2 one (libmcgq keeps mcgq_crc32c hidden). */
#define mcgq_crc32c mcgq_test_crc32c_dispatch
#include "../host/cpu/crc32c.c"
#undef mcgq_crc32c
#undef MCGQ_CRC_HW
#define MCGQ_CRC32C_PORTABLE_ONLY 1
#define crc32c_bytes crc32c_bytes_portable
#define crc32c_hw crc32c_hw_portable
#define mcgq_crc32c mcgq_test_crc32c_portable
#include "../host/cpu/crc32c.c"
