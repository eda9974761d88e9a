/* version.c - runtime version of the loaded library. */
#include "internal.h"

int mcgqGetVersion(void) { return MCGQ_VERSION_CODE; }
