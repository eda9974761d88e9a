/* tuning.h - every launch parameter of the GPU kernels, in one table.
 * Changing a value changes speed only, never bits: the results are integer
 * sums and order-independent atomics (max, or, add of integers). */
#ifndef MCGQ_TUNING_H_
#define MCGQ_TUNING_H_

#define MCGQ_TUNE_ELEMENT_THREADS 256   /* one thread per element kernels */
#define MCGQ_TUNE_SAMPLE_THREADS 256    /* card path: one thread per sample */
#define MCGQ_TUNE_DECODE_THREADS 128    /* decoder: one warp per chunk */
#define MCGQ_TUNE_DECODE_MAX_BLOCKS 2048u /* decoder grids (grid-stride beyond) */
#define MCGQ_TUNE_CRC_THREADS 256       /* CRC32C: one block per region */
#define MCGQ_TUNE_CRC_MAX_BLOCKS 512u   /* CRC32C: blocks of one launch */
#define MCGQ_TUNE_MAX_GRID 65535u       /* grid-stride loops cap the grid here */
#define MCGQ_TUNE_ZERO_THREADS 256      /* region zeroing, 8 bytes per thread */
/* Encode tiles: every element kernel of an encode runs one block per tile
 * of every layer.  A power of two dividing the 2^13-element chunk of the
 * format (so chunk index entries fall on tile starts), and a multiple of
 * 32 * MCGQ_TUNE_TILE_THREADS (each warp owns whole 32-element rows). */
#define MCGQ_TUNE_TILE_ELEMENTS 4096
#define MCGQ_TUNE_TILE_THREADS 256
#define MCGQ_TUNE_LAYER_THREADS 256     /* per-layer scans over tiles, the plan */
#define MCGQ_TUNE_MAX_DECODE_RANKS 128  /* messages per decode (kernel parameter space) */

#endif /* MCGQ_TUNING_H_ */
