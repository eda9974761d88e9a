/* bench_report.c - the nccl-tests-like text table and the JSON file. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

void bench_print_header(FILE *f, const bench_env_t *env, const bench_options_t *opt) {
  fprintf(f, "# mcgq_bench %d.%d.%d  algo: %s  dist: %s  iters: %d  warmup: %d  check: %d\n",
          MCGQ_VERSION_MAJOR, MCGQ_VERSION_MINOR, MCGQ_VERSION_PATCH,
          bench_algo_name(opt->algo), bench_dist_name(opt->dist), opt->iters,
          opt->warmup, opt->check);
  fprintf(f, "# date: %s  host: %s  commit: %s\n", env->date, env->host, env->commit);
  fprintf(f, "# cpu: %s  load average: %s\n", env->cpu, env->load);
  fprintf(f, "# device: %s\n", env->device);
  fprintf(f, "# command: %s\n", opt->command);
  fprintf(f, "#\n");
}

void bench_print_table_head(FILE *f, int gpu) {
  fprintf(f, "# %10s %10s %5s %10s %8s %6s %7s %10s %10s %10s %8s %6s %10s %6s %7s %7s %7s %7s\n",
          "size", "count", "K", "time", "GB/s", "%copy", "cpu x", gpu ? "reduce" : "quant",
          gpu ? "scan" : "rle", "decode", "dec GB/s", "dec x", "avg4", "avg4 x", "bits/el",
          "paper", "wire", "#wrong");
  fprintf(f, "# %10s %10s %5s %10s %8s %6s %7s %10s %10s %10s %8s %6s %10s %6s %7s %7s %7s %7s\n",
          "(B)", "(elements)", "", "(us)", "", "", "copy", "(us)", "(us)", "(us)", "", "copy",
          "(us)", "copy", "", "ratio", "ratio", "");
}

static double gbs(uint64_t bytes, double us) { return us > 0 ? (double)bytes / (us * 1e3) : 0; }

/* time / copy time of the same run, or -1 where either is not measured. */
static double copy_ratio(double us, double copy_us) {
  return us > 0 && copy_us > 0 ? us / copy_us : -1.0;
}

/* The decode columns' "x copy": on the CPU from thread CPU times (like
 * "cpu x copy"), which do not grow when other processes take the cores
 * between the two measurements; on the GPU from the times. */
static double decode_copy_ratio(const bench_row_t *r, double us, double cpu_us) {
  if (r->copy_cpu_us > 0) return copy_ratio(cpu_us, r->copy_cpu_us);
  return copy_ratio(us, r->copy_us);
}

/* "%.1f" of a ratio, "-" where it is not measured. */
static const char *ratio_text(char *buf, size_t size, double ratio) {
  if (ratio > 0) snprintf(buf, size, "%.1f", ratio);
  else snprintf(buf, size, "-");
  return buf;
}

void bench_print_row(FILE *f, const bench_row_t *r, int gpu) {
  double stage_a = gpu ? r->reduce_us : r->quant_us;
  double stage_b = gpu ? r->scan_us : r->rle_us;
  char wrong[24];
  if (r->checked) snprintf(wrong, sizeof wrong, "%llu", (unsigned long long)r->wrong);
  else snprintf(wrong, sizeof wrong, "N/A");
  char cpu_ratio[24];
  if (r->time_cpu_us > 0 && r->copy_cpu_us > 0)
    snprintf(cpu_ratio, sizeof cpu_ratio, "%.1f", r->time_cpu_us / r->copy_cpu_us);
  else
    snprintf(cpu_ratio, sizeof cpu_ratio, "-");
  char dec_x[24], avg_x[24], avg_us[24];
  if (r->average_us > 0) snprintf(avg_us, sizeof avg_us, "%.1f", r->average_us);
  else snprintf(avg_us, sizeof avg_us, "-");
  fprintf(f, "  %10llu %10llu %5g %10.1f %8.3f %6.1f %7s %10.1f %10.1f %10.1f %8.3f %6s %10s %6s %7.3f %7.2f %7.2f %7s\n",
          (unsigned long long)r->bytes, (unsigned long long)r->n, r->k, r->time_us,
          gbs(r->bytes, r->time_us), 100.0 * r->copy_us / r->time_us, cpu_ratio, stage_a,
          stage_b, r->decode_us, gbs(r->bytes, r->decode_us),
          ratio_text(dec_x, sizeof dec_x, decode_copy_ratio(r, r->decode_us, r->decode_cpu_us)), avg_us,
          ratio_text(avg_x, sizeof avg_x,
                     decode_copy_ratio(r, r->average_us, r->average_cpu_us)),
          r->bits_per_element, r->paper_ratio, r->wire_ratio, wrong);
}

void bench_print_model_head(FILE *f, int gpu) {
  fprintf(f, "# %-10s %6s %11s %5s %10s %11s %11s %11s %8s %8s %7s %7s", "model",
          "layers", "elements", "K", "fp32 copy", "encode", "enc/layer", "decode",
          "enc/copy", "bits/el", "paper", "wire");
  if (gpu)
    fprintf(f, " %10s %10s %8s %10s %10s %6s", "enc graph", "dec graph", "dec/copy",
            "CUB sum", "CUB scan", "#wrong");
  fprintf(f, "\n# %-10s %6s %11s %5s %10s %11s %11s %11s %8s %8s %7s %7s", "", "", "", "",
          "(us)", "(us)", "(us)", "(us)", "", "", "ratio", "ratio");
  if (gpu) fprintf(f, " %10s %10s %8s %10s %10s %6s", "(us)", "(us)", "", "(us)", "(us)", "");
  fprintf(f, "\n");
}

void bench_print_model_row(FILE *f, const bench_model_row_t *r) {
  fprintf(f, "  %-10s %6d %11llu %5g %10.1f %11.1f %11.1f %11.1f %8.1f %8.3f %7.2f %7.2f",
          r->name, r->layers, (unsigned long long)r->n, r->k, r->copy_us, r->encode_us,
          r->encode_per_layer_us, r->decode_us, r->encode_us / r->copy_us,
          r->bits_per_element, r->paper_ratio, r->wire_ratio);
  if (r->gpu) {
    char wrong[24];
    if (r->checked) snprintf(wrong, sizeof wrong, "%llu", (unsigned long long)r->wrong);
    else snprintf(wrong, sizeof wrong, "N/A");
    fprintf(f, " %10.1f %10.1f %8.2f %10.1f %10.1f %6s", r->encode_graph_us,
            r->decode_graph_us, r->decode_us / r->copy_us, r->reduce_us, r->scan_us, wrong);
  }
  fprintf(f, "\n");
}

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void json_rows(FILE *f, const bench_row_t *rows, int count) {
  fprintf(f, "  \"rows\": [\n");
  for (int i = 0; i < count; ++i) {
    const bench_row_t *r = &rows[i];
    fprintf(f,
            "    {\"bytes\": %llu, \"n\": %llu, \"k\": %g, \"time_us\": %.3f, "
            "\"gbs\": %.4f, \"copy_us\": %.3f, \"pct_copy\": %.3f, \"time_cpu_us\": %.3f, "
            "\"copy_cpu_us\": %.3f, \"quant_us\": %.3f, "
            "\"rle_us\": %.3f, \"decode_us\": %.3f, \"decode_gbs\": %.4f, "
            "\"decode_copy_ratio\": %.3f, \"average_us\": %.3f, \"average_ranks\": %d, "
            "\"average_copy_ratio\": %.3f, "
            "\"reduce_us\": %.3f, \"scan_us\": %.3f, \"bits_per_element\": %.6f, "
            "\"paper_ratio\": %.4f, \"wire_ratio\": %.4f, \"wrong\": %lld}%s\n",
            (unsigned long long)r->bytes, (unsigned long long)r->n, r->k, r->time_us,
            gbs(r->bytes, r->time_us), r->copy_us, 100.0 * r->copy_us / r->time_us,
            r->time_cpu_us, r->copy_cpu_us, r->quant_us, r->rle_us, r->decode_us, gbs(r->bytes, r->decode_us),
            decode_copy_ratio(r, r->decode_us, r->decode_cpu_us), r->average_us,
            BENCH_AVERAGE_RANKS, decode_copy_ratio(r, r->average_us, r->average_cpu_us),
            r->reduce_us, r->scan_us, r->bits_per_element, r->paper_ratio,
            r->wire_ratio, r->checked ? (long long)r->wrong : -1LL,
            i + 1 < count ? "," : "");
  }
  fprintf(f, "  ],\n");
}

static void json_models(FILE *f, const bench_model_row_t *m, int count) {
  fprintf(f, "  \"models\": [\n");
  for (int i = 0; i < count; ++i) {
    fprintf(f, "    {\"name\": ");
    json_string(f, m[i].name);
    fprintf(f,
            ", \"layers\": %d, \"n\": %llu, \"smallest\": %llu, \"largest\": %llu, "
            "\"k\": %g, \"copy_us\": %.3f, \"encode_us\": %.3f, "
            "\"encode_per_layer_us\": %.3f, \"decode_us\": %.3f, \"wire_bytes\": %llu, "
            "\"bits_per_element\": %.6f, \"paper_ratio\": %.4f, \"wire_ratio\": %.4f, "
            "\"gpu\": %d, \"encode_graph_us\": %.3f, \"decode_graph_us\": %.3f, "
            "\"decode_copy_ratio\": %.3f, \"reduce_us\": %.3f, \"scan_us\": %.3f, "
            "\"wrong\": %lld}%s\n",
            m[i].layers, (unsigned long long)m[i].n, (unsigned long long)m[i].smallest,
            (unsigned long long)m[i].largest, m[i].k, m[i].copy_us, m[i].encode_us,
            m[i].encode_per_layer_us, m[i].decode_us, (unsigned long long)m[i].wire_bytes,
            m[i].bits_per_element, m[i].paper_ratio, m[i].wire_ratio, m[i].gpu,
            m[i].encode_graph_us, m[i].decode_graph_us, m[i].decode_us / m[i].copy_us,
            m[i].reduce_us, m[i].scan_us, m[i].checked ? (long long)m[i].wrong : -1LL,
            i + 1 < count ? "," : "");
  }
  fprintf(f, "  ],\n");
}

/* The inputs of `mcgq model` (mcgqCodecModel_t and bits/element), derived
 * from this run: throughputs of the largest size of the first K, the fixed
 * cost as the smallest size's encode time less its bandwidth part, the
 * per-layer cost from a
 * model step (segmented encode minus its bandwidth part, per layer).  With
 * one size only, the fixed cost is unknown and reported as 0. */
static void json_model_inputs(FILE *f, const bench_row_t *rows, int count,
                              const bench_model_row_t *m, int model_count) {
  const bench_row_t *big = NULL, *small = NULL;
  for (int i = 0; i < count; ++i) {
    if (rows[i].k != rows[0].k) continue;
    if (!big || rows[i].n > big->n) big = &rows[i];
    if (!small || rows[i].n < small->n) small = &rows[i];
  }
  double enc = 0, dec = 0, launch = 0, bits = 0, per_layer = 0;
  if (big) {
    enc = gbs(big->bytes, big->time_us);
    dec = gbs(big->bytes, big->decode_us);
    bits = big->bits_per_element;
    /* What the smallest size costs beyond its bandwidth part. */
    if (small != big) launch = small->time_us - (double)small->bytes / (enc * 1e3);
    if (launch < 0) launch = 0;
  } else if (model_count > 0) {
    enc = gbs(4 * m[0].n, m[0].encode_us);
    dec = gbs(4 * m[0].n, m[0].decode_us);
    bits = m[0].bits_per_element;
  }
  if (model_count > 0 && enc > 0) {
    double bandwidth_part = 4.0 * (double)m[0].n / (enc * 1e3);
    per_layer = (m[0].encode_us - bandwidth_part - launch) / m[0].layers;
    if (per_layer < 0) per_layer = 0;
  }
  fprintf(f,
          "  \"model_inputs\": {\"encode_gbs\": %.6f, \"decode_gbs\": %.6f, "
          "\"launch_us\": %.3f, \"per_layer_us\": %.4f, \"bits_per_element\": %.6f, "
          "\"k\": %g}\n",
          enc, dec, launch, per_layer, bits, count ? rows[0].k : (model_count ? m[0].k : 0));
}

int bench_write_json(const char *path, const bench_env_t *env,
                     const bench_options_t *opt, const bench_row_t *rows,
                     int row_count, const bench_model_row_t *models,
                     int model_count) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "{\n  \"tool\": \"mcgq_bench\", \"version\": \"%d.%d.%d\",\n",
          MCGQ_VERSION_MAJOR, MCGQ_VERSION_MINOR, MCGQ_VERSION_PATCH);
  const char *keys[] = {"date", "host", "cpu", "load_average", "device", "commit", "command"};
  const char *vals[] = {env->date, env->host, env->cpu, env->load, env->device, env->commit,
                        opt->command};
  for (int i = 0; i < 7; ++i) {
    fprintf(f, "  \"%s\": ", keys[i]);
    json_string(f, vals[i]);
    fprintf(f, ",\n");
  }
  fprintf(f, "  \"algo\": \"%s\", \"dist\": \"%s\", \"iters\": %d, \"warmup\": %d, \"check\": %d,\n",
          bench_algo_name(opt->algo), bench_dist_name(opt->dist), opt->iters,
          opt->warmup, opt->check);
  json_rows(f, rows, row_count);
  json_models(f, models, model_count);
  json_model_inputs(f, rows, row_count, models, model_count);
  fprintf(f, "}\n");
  return fclose(f) == 0 ? 0 : -1;
}
