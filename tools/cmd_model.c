/* cmd_model.c - `mcgq model`: predicted step time of mcgq against a ring
 * all-reduce of fp32 and bf16 on a link, from measured codec throughput
 * (a mcgq_bench JSON: --bench, else the newest one recorded in
 * bench/results/, see model_bench.c; or flags) and measured bits/element,
 * with break-even bits/element and layer size, and whole-model predictions
 * over layer tables.  Built-in codec speeds are printed as assumptions.  The math is the library's (mcgqModelStepTime & co., host/model/policy.c);
 * this file only parses, loops and prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_bench.h"

#define MODEL_MAX_RANKS 32
#define MODEL_MAX_TABLES 8
#define MODEL_CMD "model"

#ifndef MCGQ_BENCH_RESULTS_DIR
#define MCGQ_BENCH_RESULTS_DIR "bench/results"
#endif

/* Where the codec numbers came from, for the header of the output. */
typedef enum {
  CODEC_BUILTIN,     /* MCGQ_CODEC_MODEL_INITIALIZER: assumed, not measured */
  CODEC_BENCH_GIVEN, /* --bench FILE */
  CODEC_BENCH_NEWEST /* the newest recorded result in MCGQ_BENCH_RESULTS_DIR */
} codec_source_t;

typedef struct {
  mcgqLinkModel_t link;
  mcgqCodecModel_t codec;
  const char *link_name;
  const char *bench_json;
  codec_source_t source;
  int codec_flags;            /* --encode-gbs & co. given: they override */
  char newest_path[1024], newest_date[64], newest_device[128];
  double bits;
  int ranks[MODEL_MAX_RANKS];
  int rank_count;
  uint64_t n;                 /* 0: sweep sizes */
  char table_list[512];       /* --tables, split in place at the commas */
  const char *tables[MODEL_MAX_TABLES];
  int table_count;
  int modes;                  /* --modes: the exchange modes instead of the size sweep */
  uint32_t layers;            /* --layers: layers of --n in --modes */
  mcgqExchangeModel_t exchange; /* hierarchy and b2 (--ranks-per-node & co.) */
  const char *node_link_name;
} model_options_t;

static const char model_usage[] =
    "usage: mcgq model [options]\n"
    "Alpha-beta model of one gradient exchange step (bench/README.md):\n"
    "predicted mcgq step vs ring all-reduce of fp32 and bf16, break-even\n"
    "bits/element and layer size, whole-model predictions.\n"
    "  --link NAME          pcie4 | nvlink-h100 (default pcie4)\n"
    "  --alpha-us X         override the link latency per ring step\n"
    "  --bw-gbs X           override the link bandwidth per direction (GB/s)\n"
    "  --bench FILE.json    codec throughput and bits/element from mcgq_bench -J\n"
    "                       (default: the newest result with model inputs in\n"
    "                       " MCGQ_BENCH_RESULTS_DIR ")\n"
    "  --builtin            use the built-in codec speeds (assumed, not measured)\n"
    "  --encode-gbs X       encode throughput, fp32 input GB/s\n"
    "  --decode-gbs X       decode throughput of one stream, fp32 output GB/s\n"
    "  --launch-us X        fixed cost of one encode or decode call\n"
    "  --per-layer-us X     extra cost per layer inside one call\n"
    "  --bits X             wire bits per element (default: bench JSON, else 4)\n"
    "  --fixed-capacity     no size exchange before the payload all-gather\n"
    "  --ranks LIST         numbers of ranks, comma separated (default 2,4,8)\n"
    "  --n ELEMENTS         one layer size instead of the 1K..1G sweep\n"
    "  --modes              per rank count: all-gather, two-stage and reduce-scatter\n"
    "                       steps against fp32/bf16 all-reduce (reduce-scatter), and\n"
    "                       the mode the policy picks; over --tables, or --n/--layers\n"
    "  --layers L           layers of --n (with --modes; default 1)\n"
    "  --bits2 X            two-stage: bits/element of the re-encoded shards (default --bits)\n"
    "  --ranks-per-node G   hierarchical: fp32 within nodes of G ranks, mcgq across nodes\n"
    "  --node-link NAME     the link within a node (default nvlink-h100)\n"
    "  --tables LIST        whole-model predictions over layer tables: resnet50,\n"
    "                       bert-base, gpt2-small or paths, comma separated\n"
    "Flags override the --link preset and the --bench numbers.\n"
    "  -h, --help           this help\n";

/* --ranks: comma-separated strict decimals in [1, 2^20]. */
static int parse_ranks(const char *s, model_options_t *o) {
  o->rank_count = 0;
  while (*s) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    uint64_t p = 0;
    if (cli_parse_decimal(s, len, (uint64_t)1 << 20, &p) || p < 1 ||
        o->rank_count == MODEL_MAX_RANKS)
      return -1;
    o->ranks[o->rank_count++] = (int)p;
    s += len;
    if (*s == ',' && *++s == '\0') return -1; /* a trailing comma */
  }
  return o->rank_count ? 0 : -1;
}

static int split_tables(const char *list, model_options_t *o) {
  snprintf(o->table_list, sizeof o->table_list, "%s", list);
  o->table_count = 0;
  for (char *tok = strtok(o->table_list, ","); tok; tok = strtok(NULL, ",")) {
    if (o->table_count == MODEL_MAX_TABLES) return -1;
    o->tables[o->table_count++] = tok;
  }
  return o->table_count ? 0 : -1;
}

/* The value after `"key":` in a JSON text; -1 when absent. */
static int json_number(const char *text, const char *key, double *out) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = strstr(text, pattern);
  if (!at) return -1;
  char *end = NULL;
  double v = strtod(at + strlen(pattern), &end);
  if (end == at + strlen(pattern)) return -1;
  *out = v;
  return 0;
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *text = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long size = ftell(f);
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = (char *)malloc((size_t)size + 1))) {
      size_t got = fread(text, 1, (size_t)size, f);
      text[got] = '\0';
    }
  }
  fclose(f);
  return text;
}

/* Codec numbers and bits/element from a mcgq_bench JSON ("model_inputs"). */
static int load_bench(const char *path, model_options_t *o) {
  char *text = read_text(path);
  if (!text) return cli_error(MODEL_CMD, "cannot read %s", path);
  const char *inputs = strstr(text, "\"model_inputs\"");
  int rc = CLI_EXIT_OK;
  if (!inputs || json_number(inputs, "encode_gbs", &o->codec.encode_gbs) ||
      json_number(inputs, "decode_gbs", &o->codec.decode_gbs) ||
      json_number(inputs, "launch_us", &o->codec.launch_us) ||
      json_number(inputs, "per_layer_us", &o->codec.per_layer_us) ||
      json_number(inputs, "bits_per_element", &o->bits))
    rc = cli_error(MODEL_CMD, "%s has no complete \"model_inputs\" object", path);
  free(text);
  return rc;
}

/* Applies, in this order: preset, bench JSON, then the single overrides. */
static int parse_model_args(int argc, char **argv, model_options_t *o, int *help) {
  memset(o, 0, sizeof *o);
  mcgqCodecModel_t codec = MCGQ_CODEC_MODEL_INITIALIZER;
  o->codec = codec;
  o->link_name = "pcie4";
  o->bits = 4.0;
  const char *ranks = "2,4,8", *tables = NULL;
  int fixed = 0, builtin = 0;
  double alpha, bw, enc, dec, launch, per_layer, bits, bits2 = 0.0;
  uint32_t ranks_per_node = 1;
  mcgqExchangeModel_t exchange = MCGQ_EXCHANGE_MODEL_INITIALIZER;
  o->exchange = exchange;
  o->node_link_name = "nvlink-h100";
  o->layers = 1;
  cli_option_t opts[] = {
      {"--link", CLI_STRING, &o->link_name, 0}, {"--alpha-us", CLI_DOUBLE, &alpha, 0},
      {"--bw-gbs", CLI_DOUBLE, &bw, 0},         {"--bench", CLI_STRING, &o->bench_json, 0},
      {"--encode-gbs", CLI_DOUBLE, &enc, 0},    {"--decode-gbs", CLI_DOUBLE, &dec, 0},
      {"--launch-us", CLI_DOUBLE, &launch, 0},  {"--per-layer-us", CLI_DOUBLE, &per_layer, 0},
      {"--bits", CLI_DOUBLE, &bits, 0},         {"--fixed-capacity", CLI_FLAG, &fixed, 0},
      {"--ranks", CLI_STRING, &ranks, 0},       {"--n", CLI_U64, &o->n, 0},
      {"--tables", CLI_STRING, &tables, 0},     {"--builtin", CLI_FLAG, &builtin, 0},
      {"--modes", CLI_FLAG, &o->modes, 0},      {"--layers", CLI_U32, &o->layers, 0},
      {"--bits2", CLI_DOUBLE, &bits2, 0},       {"--ranks-per-node", CLI_U32, &ranks_per_node, 0},
      {"--node-link", CLI_STRING, &o->node_link_name, 0}};
  const int count = (int)(sizeof opts / sizeof opts[0]);
  cli_parse_t parsed = cli_parse(MODEL_CMD, argc, argv, opts, count, model_usage);
  *help = parsed == CLI_HELP;
  if (parsed != CLI_RUN) return parsed == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_BAD_INPUT;
  mcgqResult_t r = mcgqLinkModelPreset(o->link_name, &o->link);
  if (r != mcgqSuccess) return cli_library_error(MODEL_CMD, "--link", r);
  if (builtin && o->bench_json) return cli_error(MODEL_CMD, "--builtin and --bench exclude each other");
  o->source = o->bench_json ? CODEC_BENCH_GIVEN : CODEC_BUILTIN;
  if (!o->bench_json && !builtin &&
      model_newest_bench(MCGQ_BENCH_RESULTS_DIR, o->newest_path, sizeof o->newest_path,
                         o->newest_date, sizeof o->newest_date, o->newest_device,
                         sizeof o->newest_device) == 0) {
    o->bench_json = o->newest_path;
    o->source = CODEC_BENCH_NEWEST;
  }
  if (o->bench_json && load_bench(o->bench_json, o)) return CLI_EXIT_BAD_INPUT;
  if (cli_given(opts, count, "--alpha-us")) o->link.alpha_us = alpha;
  if (cli_given(opts, count, "--bw-gbs")) o->link.bw_gbs = bw;
  if (cli_given(opts, count, "--encode-gbs")) o->codec.encode_gbs = enc;
  if (cli_given(opts, count, "--decode-gbs")) o->codec.decode_gbs = dec;
  if (cli_given(opts, count, "--launch-us")) o->codec.launch_us = launch;
  if (cli_given(opts, count, "--per-layer-us")) o->codec.per_layer_us = per_layer;
  o->codec_flags = cli_given(opts, count, "--encode-gbs") || cli_given(opts, count, "--decode-gbs") ||
                   cli_given(opts, count, "--launch-us") ||
                   cli_given(opts, count, "--per-layer-us");
  if (cli_given(opts, count, "--bits")) o->bits = bits;
  if (fixed) o->codec.size_exchange = 0;
  if (parse_ranks(ranks, o)) return cli_error(MODEL_CMD, "bad --ranks '%s'", ranks);
  if (tables && split_tables(tables, o)) return cli_error(MODEL_CMD, "bad --tables '%s'", tables);
  if (cli_given(opts, count, "--n") && o->n == 0) return cli_error(MODEL_CMD, "--n must be >= 1");
  if (o->layers == 0) return cli_error(MODEL_CMD, "--layers must be >= 1");
  if (ranks_per_node == 0 || ranks_per_node > (1u << 20))
    return cli_error(MODEL_CMD, "--ranks-per-node must be in [1, 2^20]");
  o->exchange.ranks_per_node = (int32_t)ranks_per_node;
  o->exchange.second_bits_per_element = bits2;
  r = mcgqLinkModelPreset(o->node_link_name, &o->exchange.node_link);
  if (r != mcgqSuccess) return cli_library_error(MODEL_CMD, "--node-link", r);
  if (o->modes && !o->table_count && !o->n)
    return cli_error(MODEL_CMD, "--modes needs --tables or --n");
  return CLI_EXIT_OK;
}

static void print_parameters(const model_options_t *o) {
  printf("# mcgq model: alpha-beta prediction of one exchange step\n");
  printf("# link: %s  alpha %.3f us  bw %.3f GB/s per direction\n", o->link_name,
         o->link.alpha_us, o->link.bw_gbs);
  printf("# codec: encode %.3f GB/s  decode %.3f GB/s per stream  launch %.2f us  "
         "per layer %.3f us  size exchange: %s\n",
         o->codec.encode_gbs, o->codec.decode_gbs, o->codec.launch_us,
         o->codec.per_layer_us, o->codec.size_exchange ? "yes" : "no (fixed capacity)");
  const char *override = o->codec_flags ? " (codec flags given override it)" : "";
  switch (o->source) {
  case CODEC_BENCH_GIVEN:
    printf("# codec source: measured, --bench %s%s\n", o->bench_json, override);
    break;
  case CODEC_BENCH_NEWEST:
    printf("# codec source: measured, the newest recorded benchmark %s\n"
           "#   (%s, device: %s)%s; --bench FILE picks another, --builtin the assumptions\n",
           o->bench_json, o->newest_date, o->newest_device, override);
    break;
  case CODEC_BUILTIN:
    if (o->codec_flags)
      printf("# codec source: given by flags (values not given are the built-in assumptions)\n");
    else
      printf("# codec source: ASSUMED, built-in defaults, not measured: the speedups below\n"
             "#   follow from these assumed codec speeds; --bench FILE.json for measured ones\n");
    break;
  }
  printf("# wire bits/element: %.4f\n#\n", o->bits);
}

static const char *crossing(const mcgqBreakEven_t *be, char *buf, size_t size) {
  if (be->elements < 0) snprintf(buf, size, "%s", be->always ? "always" : "never");
  else snprintf(buf, size, "%s%.0f", be->larger_wins ? ">" : "<", be->elements);
  return buf;
}

/* Break-even bits/element; "never" when even 0 bits would lose (b* <= 0),
 * "-" for one rank (nothing to exchange). */
static const char *bits_text(int P, double bits, char *buf, size_t size) {
  if (P < 2) snprintf(buf, size, "-");
  else if (bits <= 0) snprintf(buf, size, "never");
  else snprintf(buf, size, "%.3f", bits);
  return buf;
}

static int print_size_row(const model_options_t *o, uint64_t n, int P) {
  mcgqStepPrediction_t p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  mcgqBreakEven_t b32, b16;
  memset(&b32, 0, sizeof b32);
  b32.struct_size = sizeof b32;
  b16 = b32;
  if (mcgqModelStepTime(&o->link, &o->codec, n, 1, o->bits, P, &p) != mcgqSuccess) return -1;
  if (P >= 2 &&
      (mcgqModelBreakEven(&o->link, &o->codec, n, 1, o->bits, P, 32, &b32) != mcgqSuccess ||
       mcgqModelBreakEven(&o->link, &o->codec, n, 1, o->bits, P, 16, &b16) != mcgqSuccess))
    return -1;
  char s32[24], s16[24];
  printf("  %5d %12llu %12.1f %12.1f %12.1f %8.3f %8.3f %9s %9s\n", P,
         (unsigned long long)n, p.mcgq_us, p.allreduce_fp32_us, p.allreduce_bf16_us,
         p.mcgq_us > 0 ? p.allreduce_fp32_us / p.mcgq_us : 0,
         p.mcgq_us > 0 ? p.allreduce_bf16_us / p.mcgq_us : 0,
         bits_text(P, b32.bits_per_element, s32, sizeof s32),
         bits_text(P, b16.bits_per_element, s16, sizeof s16));
  return 0;
}

static int print_sizes(const model_options_t *o) {
  printf("# one layer per call; speedup = all-reduce time / mcgq time; b* = break-even bits/element\n");
  printf("# %5s %12s %12s %12s %12s %8s %8s %9s %9s\n", "ranks", "elements", "mcgq(us)",
         "fp32 AR(us)", "bf16 AR(us)", "vs fp32", "vs bf16", "b* fp32", "b* bf16");
  for (int r = 0; r < o->rank_count; ++r) {
    if (o->n) {
      if (print_size_row(o, o->n, o->ranks[r])) return -1;
      continue;
    }
    for (uint64_t n = 1024; n <= (1ull << 30); n *= 4)
      if (print_size_row(o, n, o->ranks[r])) return -1;
  }
  printf("#\n# break-even layer size at %.4f bits/element (elements; '>' = mcgq faster above)\n",
         o->bits);
  printf("# %5s %16s %16s\n", "ranks", "vs fp32", "vs bf16");
  for (int r = 0; r < o->rank_count; ++r) {
    int P = o->ranks[r];
    if (P < 2) continue;
    mcgqBreakEven_t b32, b16;
    memset(&b32, 0, sizeof b32);
    b32.struct_size = sizeof b32;
    b16 = b32;
    if (mcgqModelBreakEven(&o->link, &o->codec, 1, 1, o->bits, P, 32, &b32) != mcgqSuccess ||
        mcgqModelBreakEven(&o->link, &o->codec, 1, 1, o->bits, P, 16, &b16) != mcgqSuccess)
      return -1;
    char c32[32], c16[32];
    printf("  %5d %16s %16s\n", P, crossing(&b32, c32, sizeof c32), crossing(&b16, c16, sizeof c16));
  }
  return 0;
}

#ifndef MCGQ_MODELS_DIR
#define MCGQ_MODELS_DIR "bench/models"
#endif

static uint64_t *read_table(const char *name, int *count) {
  char path[512];
  if (strchr(name, '/') || strstr(name, ".txt")) snprintf(path, sizeof path, "%s", name);
  else snprintf(path, sizeof path, "%s/%s.txt", MCGQ_MODELS_DIR, name);
  FILE *f = fopen(path, "r");
  if (!f) {
    cli_error(MODEL_CMD, "cannot open layer table %s", path);
    return NULL;
  }
  int cap = 256;
  *count = 0;
  uint64_t *sizes = (uint64_t *)malloc((size_t)cap * sizeof *sizes);
  char line[512], label[400];
  unsigned long long n;
  while (sizes && fgets(line, sizeof line, f)) {
    if (line[0] == '#' || line[0] == '\n') continue;
    if (sscanf(line, "%399s %llu", label, &n) != 2 || n == 0) continue;
    if (*count == cap) {
      uint64_t *grown = (uint64_t *)realloc(sizes, (size_t)(cap *= 2) * sizeof *grown);
      if (!grown) {
        free(sizes);
        sizes = NULL;
        break;
      }
      sizes = grown;
    }
    sizes[(*count)++] = n;
  }
  fclose(f);
  if (sizes && *count == 0) {
    free(sizes);
    sizes = NULL;
  }
  return sizes;
}

/* Whole model, P ranks: (a) all layers in one bucket (one segmented call,
 * one collective); (b) per layer, each compressed only where the policy
 * says so, every layer its own call and collective (an upper bound). */
static int print_table(const model_options_t *o, const char *name, int P) {
  int count = 0;
  uint64_t *sizes = read_table(name, &count);
  if (!sizes) return -1;
  uint64_t total = 0, compressed_n = 0;
  int compressed = 0, rc = 0;
  double per_layer_us = 0, per_layer_fp32_us = 0;
  for (int i = 0; i < count && rc == 0; ++i) {
    mcgqStepPrediction_t p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    int yes = 0;
    total += sizes[i];
    rc |= mcgqModelStepTime(&o->link, &o->codec, sizes[i], 1, o->bits, P, &p) != mcgqSuccess;
    rc |= mcgqPolicyShouldCompress(&o->link, &o->codec, sizes[i], 1, o->bits, P, 32, &yes) !=
          mcgqSuccess;
    compressed += yes;
    compressed_n += yes ? sizes[i] : 0;
    per_layer_us += yes ? p.mcgq_us : p.allreduce_fp32_us;
    per_layer_fp32_us += p.allreduce_fp32_us;
  }
  mcgqStepPrediction_t bucket;
  memset(&bucket, 0, sizeof bucket);
  bucket.struct_size = sizeof bucket;
  if (rc == 0)
    rc = mcgqModelStepTime(&o->link, &o->codec, total, (uint32_t)count, o->bits, P, &bucket) !=
         mcgqSuccess;
  if (rc == 0)
    printf("  %-12s %5d %6d %11llu %11.1f %11.1f %11.1f %7.3f %10.1f %10.1f %6d %6.1f%%\n", name,
           P, count, (unsigned long long)total, bucket.mcgq_us, bucket.allreduce_fp32_us,
           bucket.allreduce_bf16_us, bucket.allreduce_fp32_us / bucket.mcgq_us, per_layer_us,
           per_layer_fp32_us, compressed, 100.0 * (double)compressed_n / (double)total);
  free(sizes);
  return rc ? -1 : 0;
}

static int print_tables(const model_options_t *o) {
  printf("#\n# whole model: 'bucket' = all layers in one segmented call and one collective;\n"
         "# 'per layer' = each layer its own call, compressed only where the policy says so\n");
  printf("# %-12s %5s %6s %11s %11s %11s %11s %7s %10s %10s %6s %7s\n", "model", "ranks",
         "layers", "elements", "bucket mcgq", "bucket fp32", "bucket bf16", "speedup",
         "per layer", "layer fp32", "compr", "of n");
  for (int t = 0; t < o->table_count; ++t)
    for (int r = 0; r < o->rank_count; ++r)
      if (print_table(o, o->tables[t], o->ranks[r])) return -1;
  return 0;
}

static const char *mode_name(int mode) {
  switch (mode) {
    case MCGQ_EXCHANGE_ALL_GATHER: return "all-gather";
    case MCGQ_EXCHANGE_TWO_STAGE: return "two-stage";
    case MCGQ_EXCHANGE_REDUCE_SCATTER: return "red-scatter";
    default: return "fp32/bf16";
  }
}

/* One row of --modes: n elements in L layers on P ranks. */
static int print_modes_row(const model_options_t *o, const char *what, uint64_t n,
                           uint32_t layers, int P) {
  if (o->exchange.ranks_per_node > 1 && P % o->exchange.ranks_per_node != 0) {
    printf("  %-12s %6d  (not a multiple of --ranks-per-node %d)\n", what, P,
           (int)o->exchange.ranks_per_node);
    return 0;
  }
  mcgqStepPrediction_t p[3];
  for (int m = 0; m < 3; ++m) {
    mcgqExchangeModel_t x = o->exchange;
    x.mode = m;
    memset(&p[m], 0, sizeof p[m]);
    p[m].struct_size = sizeof p[m];
    if (mcgqModelExchangeStepTime(&o->link, &o->codec, &x, n, layers, o->bits, P, &p[m]) !=
        mcgqSuccess)
      return -1;
  }
  int pick32 = MCGQ_EXCHANGE_NONE, pick16 = MCGQ_EXCHANGE_NONE;
  if (mcgqPolicyChooseExchange(&o->link, &o->codec, &o->exchange, n, layers, o->bits, P, 32,
                               &pick32) != mcgqSuccess ||
      mcgqPolicyChooseExchange(&o->link, &o->codec, &o->exchange, n, layers, o->bits, P, 16,
                               &pick16) != mcgqSuccess)
    return -1;
  const mcgqStepPrediction_t *ag = &p[MCGQ_EXCHANGE_ALL_GATHER];
  const mcgqStepPrediction_t *ts = &p[MCGQ_EXCHANGE_TWO_STAGE];
  const mcgqStepPrediction_t *rs = &p[MCGQ_EXCHANGE_REDUCE_SCATTER];
  const double best = ag->mcgq_us < ts->mcgq_us ? ag->mcgq_us : ts->mcgq_us;
  printf("  %-12s %6d %11.1f %11.1f %11.1f %11.1f %7.2f %7.2f %11s %11s %11.1f %11.1f\n", what,
         P, ag->mcgq_us, ts->mcgq_us, ag->allreduce_fp32_us, ag->allreduce_bf16_us,
         ag->allreduce_fp32_us / best, ag->allreduce_bf16_us / best, mode_name(pick32),
         mode_name(pick16), rs->mcgq_us, rs->allreduce_bf16_us);
  return 0;
}

/* --modes: the three exchange modes per rank count (issue 16's table). */
static int print_modes(const model_options_t *o) {
  printf("# exchange modes at %.4f bits/element (two-stage shards at %.4f)%s\n", o->bits,
         o->exchange.second_bits_per_element > 0 ? o->exchange.second_bits_per_element : o->bits,
         o->exchange.ranks_per_node > 1 ? "; hierarchical" : "");
  if (o->exchange.ranks_per_node > 1)
    printf("# nodes of %d ranks on %s (alpha %.3f us, bw %.3f GB/s): fp32 reduce-scatter and\n"
           "# all-gather within a node, mcgq across nodes on each rank's 1/%d\n",
           (int)o->exchange.ranks_per_node, o->node_link_name, o->exchange.node_link.alpha_us,
           o->exchange.node_link.bw_gbs, (int)o->exchange.ranks_per_node);
  printf("# times in us; 'x fp32'/'x bf16' = all-reduce time / the faster mcgq mode;\n"
         "# 'pick' = mcgqPolicyChooseExchange against that all-reduce; the last two\n"
         "# columns: compressed reduce-scatter against a bf16 ring reduce-scatter\n");
  printf("# %-12s %6s %11s %11s %11s %11s %7s %7s %11s %11s %11s %11s\n", "what", "ranks",
         "all-gather", "two-stage", "fp32 AR", "bf16 AR", "x fp32", "x bf16", "pick fp32",
         "pick bf16", "red-scatter", "bf16 RS");
  for (int t = 0; t < (o->table_count ? o->table_count : 1); ++t) {
    uint64_t n = o->n, *sizes = NULL;
    uint32_t layers = o->layers;
    const char *what = "n";
    if (o->table_count) {
      int count = 0;
      sizes = read_table(o->tables[t], &count);
      if (!sizes) return -1;
      n = 0;
      for (int i = 0; i < count; ++i) n += sizes[i];
      layers = (uint32_t)count;
      what = o->tables[t];
    }
    int rc = 0;
    for (int r = 0; r < o->rank_count && rc == 0; ++r)
      rc = print_modes_row(o, what, n, layers, o->ranks[r]);
    free(sizes);
    if (rc) return -1;
  }
  return 0;
}

int mcgq_cmd_model(int argc, char **argv) {
  model_options_t o;
  int help = 0;
  int rc = parse_model_args(argc, argv, &o, &help);
  if (rc != CLI_EXIT_OK || help) return rc;
  /* Validate the link, codec and bits once, with the library's messages. */
  mcgqStepPrediction_t probe;
  memset(&probe, 0, sizeof probe);
  probe.struct_size = sizeof probe;
  mcgqResult_t r = mcgqModelStepTime(&o.link, &o.codec, 1, 1, o.bits, 2, &probe);
  if (r != mcgqSuccess) return cli_library_error(MODEL_CMD, "model parameters", r);
  print_parameters(&o);
  if (o.modes ? print_modes(&o) : (print_sizes(&o) || (o.table_count && print_tables(&o)))) {
    /* A table that cannot be read has printed its line already; a library
     * failure left its detail. */
    const char *detail = mcgqGetLastErrorDetail();
    return *detail ? cli_error(MODEL_CMD, "%s", detail) : CLI_EXIT_BAD_INPUT;
  }
  return CLI_EXIT_OK;
}
