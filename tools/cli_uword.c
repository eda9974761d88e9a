/* cli_uword.c - the random word u of a layer, from --u or from
 * --seed/--step/--layer/--rank through mcgqRandomWord (DESIGN.md 2.8), so a
 * command line reproduces exactly what a training step would draw. */
#include "cli.h"

int cli_resolve_u(const char *cmd, const cli_option_t *opts, int count,
                  const cli_uword_t *w, uint32_t *u) {
  int have_u = cli_given(opts, count, "--u");
  int have_seed = cli_given(opts, count, "--seed");
  int have_step = cli_given(opts, count, "--step");
  int have_place = cli_given(opts, count, "--layer") || cli_given(opts, count, "--rank");
  if (have_u && (have_seed || have_step || have_place))
    return cli_error(cmd, "give either --u or --seed/--step[/--layer/--rank], not both");
  if (have_u) {
    *u = w->u;
    return CLI_EXIT_OK;
  }
  if (!have_seed || !have_step)
    return cli_error(cmd, "missing option %s (the random word needs --u, or --seed and --step)",
                     have_seed ? "--step" : "--seed");
  *u = mcgqRandomWord(w->seed, w->step, w->layer, w->rank);
  return CLI_EXIT_OK;
}
