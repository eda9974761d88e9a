// A library built without CUDA keeps the GPU entry points (same ABI) and
// refuses them with mcgqInvalidUsage and a detail saying why.
#include <gtest/gtest.h>

#include <string>

#include "mcgq.h"

TEST(GpuApiWithoutCuda, EveryEntryPointIsInvalidUsage) {
  EXPECT_EQ(0, mcgqGpuAvailable());
  mcgqLayerDesc_t d;
  mcgqLayerDescInit(&d);
  d.n = 4;
  size_t bytes = 0;
  EXPECT_EQ(mcgqInvalidUsage, mcgqEncodeGetTempSize(&d, 1, &bytes));
  EXPECT_NE(std::string::npos,
            std::string(mcgqGetLastErrorDetail()).find("built without CUDA"));
  EXPECT_EQ(mcgqInvalidUsage,
            mcgqEncodeAsync(&d, 1, nullptr, 0, nullptr, nullptr, nullptr, 0, nullptr));
  EXPECT_EQ(mcgqInvalidUsage, mcgqDecodeAverageGetTempSize(1, 4, 100, &bytes));
  EXPECT_EQ(mcgqInvalidUsage, mcgqDecodeAverageAsync(nullptr, nullptr, 1, nullptr, 4,
                                                     nullptr, nullptr, 0, nullptr));
  EXPECT_NE(std::string::npos,
            std::string(mcgqGetLastErrorDetail()).find("mcgqDecodeAverageAsync"));
}
