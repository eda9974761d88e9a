// Version, status strings and the C99 compilation of the public header.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

#include "mcgq.h"

extern "C" int mcgq_header_c99_version(void);

TEST(Api, VersionMatchesMacros) {
  EXPECT_EQ(mcgqGetVersion(), MCGQ_VERSION_CODE);
  EXPECT_EQ(MCGQ_VERSION_CODE,
            MCGQ_VERSION_MAJOR * 10000 + MCGQ_VERSION_MINOR * 100 + MCGQ_VERSION_PATCH);
}

TEST(Api, HeaderCompilesAsC99) { EXPECT_EQ(mcgq_header_c99_version(), MCGQ_VERSION_CODE); }

TEST(Api, EveryStatusHasItsOwnString) {
  const mcgqResult_t all[] = {mcgqSuccess,          mcgqInvalidArgument, mcgqInvalidUsage,
                              mcgqUnsupportedVersion, mcgqCorruptStream,  mcgqNonFinite,
                              mcgqCapacityExceeded, mcgqRangeError,      mcgqCudaError,
                              mcgqNcclError,        mcgqMpiError,        mcgqOutOfMemory,
                              mcgqInternalError};
  std::set<std::string> seen;
  for (mcgqResult_t r : all) {
    const char *s = mcgqGetErrorString(r);
    ASSERT_NE(s, nullptr);
    EXPECT_STRNE(s, "unknown status") << static_cast<int>(r);
    EXPECT_TRUE(seen.insert(s).second) << "duplicate string " << s;
  }
  EXPECT_STREQ(mcgqGetErrorString(mcgqNumResults), "unknown status");
  EXPECT_STREQ(mcgqGetErrorString(static_cast<mcgqResult_t>(-7)), "unknown status");
}
