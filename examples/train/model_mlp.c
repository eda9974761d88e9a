/* model_mlp.c - a multi-layer perceptron: ReLU hidden layers, softmax
 * cross-entropy output.  Tensors per layer l: W_l (dims[l+1] x dims[l],
 * row-major) and b_l (dims[l+1]); layers of different sizes so that
 * per-layer K and dynamic K have something to act on.  He-normal init. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"

static int parse_hidden(model_t *m, uint64_t inputs, uint32_t classes,
                        const char *hidden, char *err, int err_len) {
  m->depth = 0;
  m->dims[0] = (int)inputs;
  const char *p = hidden ? hidden : "";
  while (*p) {
    char *end;
    long h = strtol(p, &end, 10);
    if (end == p || h <= 0 || h > 65536 || m->depth + 2 > MODEL_MAX_DIMS) {
      snprintf(err, (size_t)err_len, "bad hidden sizes \"%s\"", hidden);
      return -1;
    }
    m->dims[++m->depth] = (int)h;
    p = *end == ',' ? end + 1 : end;
  }
  m->dims[++m->depth] = (int)classes;
  return 0;
}

static void add_tensor(model_t *m, const char *kind, int layer, uint64_t n) {
  int t = m->tensors++;
  m->size[t] = n;
  m->offset[t] = m->nparams;
  snprintf(m->name[t], sizeof m->name[t], "%s%d", kind, layer);
  m->nparams += n;
}

int mlp_create(model_t *m, const dataset_t *train, const char *hidden,
               uint64_t seed, char *err, int err_len) {
  if (parse_hidden(m, train->cols, train->classes, hidden, err, err_len) != 0)
    return -1;
  uint64_t work = 0;
  for (int l = 0; l < m->depth; ++l) {
    add_tensor(m, "W", l, (uint64_t)m->dims[l + 1] * m->dims[l]);
    add_tensor(m, "b", l, (uint64_t)m->dims[l + 1]);
  }
  for (int l = 0; l <= m->depth; ++l) work += 2 * (uint64_t)m->dims[l];
  m->params = calloc(m->nparams, sizeof(float));
  m->grads = calloc(m->nparams, sizeof(float));
  m->acc = calloc(m->nparams, sizeof(double));
  m->work = calloc(work, sizeof(float));
  if (!m->params || !m->grads || !m->acc || !m->work) {
    snprintf(err, (size_t)err_len, "out of memory");
    return -1;
  }
  rng_t r = rng_make(seed, RNG_INIT, 0, 0); /* same weights on every rank */
  for (int l = 0; l < m->depth; ++l) {
    float *w = m->params + m->offset[2 * l];
    double std = sqrt(2.0 / m->dims[l]);
    for (uint64_t i = 0; i < m->size[2 * l]; ++i) w[i] = (float)(std * rng_normal(&r));
  }
  return 0;
}

/* Activation a_l of layer l (a_0 = input copy) and its gradient, in work. */
static float *act(model_t *m, int l) {
  uint64_t off = 0;
  for (int i = 0; i < l; ++i) off += (uint64_t)m->dims[i];
  return m->work + off;
}
static float *act_grad(model_t *m, int l) {
  uint64_t total = 0;
  for (int i = 0; i <= m->depth; ++i) total += (uint64_t)m->dims[i];
  return act(m, l) + total;
}

/* Forward pass of one row; returns the cross-entropy loss and sets *right. */
static double forward(model_t *m, const float *x, int label, int *right) {
  memcpy(act(m, 0), x, sizeof(float) * (size_t)m->dims[0]);
  for (int l = 0; l < m->depth; ++l) {
    const float *w = m->params + m->offset[2 * l];
    const float *b = m->params + m->offset[2 * l + 1];
    const float *in = act(m, l);
    float *out = act(m, l + 1);
    int nin = m->dims[l], nout = m->dims[l + 1];
    for (int o = 0; o < nout; ++o) {
      double s = b[o];
      for (int i = 0; i < nin; ++i) s += (double)w[(size_t)o * nin + i] * in[i];
      out[o] = (l + 1 < m->depth && s < 0) ? 0.0f : (float)s;
    }
  }
  /* softmax in place on the logits, stable by subtracting the max */
  float *z = act(m, m->depth);
  int classes = m->dims[m->depth], best = 0;
  double zmax = z[0], sum = 0.0;
  for (int c = 1; c < classes; ++c)
    if (z[c] > zmax) zmax = z[c], best = c;
  for (int c = 0; c < classes; ++c) sum += exp((double)z[c] - zmax);
  double loss = log(sum) + zmax - z[label];
  for (int c = 0; c < classes; ++c) z[c] = (float)(exp((double)z[c] - zmax) / sum);
  *right = best == label;
  return loss;
}

/* Backward pass of the row last seen by forward(); adds into m->acc. */
static void backward(model_t *m, int label) {
  int L = m->depth;
  float *dz = act_grad(m, L);
  const float *p = act(m, L);
  for (int c = 0; c < m->dims[L]; ++c) dz[c] = p[c] - (c == label ? 1.0f : 0.0f);
  for (int l = L - 1; l >= 0; --l) {
    int nin = m->dims[l], nout = m->dims[l + 1];
    const float *in = act(m, l), *w = m->params + m->offset[2 * l];
    const float *dout = act_grad(m, l + 1);
    double *gw = m->acc + m->offset[2 * l], *gb = m->acc + m->offset[2 * l + 1];
    float *din = act_grad(m, l);
    for (int i = 0; i < nin; ++i) din[i] = 0.0f;
    for (int o = 0; o < nout; ++o) {
      gb[o] += dout[o];
      for (int i = 0; i < nin; ++i) {
        gw[(size_t)o * nin + i] += (double)dout[o] * in[i];
        din[i] += dout[o] * w[(size_t)o * nin + i];
      }
    }
    /* ReLU: the input of layer l > 0 was clipped at 0 */
    if (l > 0)
      for (int i = 0; i < nin; ++i)
        if (in[i] <= 0.0f) din[i] = 0.0f;
  }
}

void mlp_gradient(model_t *m, const dataset_t *ds, const uint64_t *idx,
                  int count) {
  for (uint64_t j = 0; j < m->nparams; ++j) m->acc[j] = 0.0;
  for (int s = 0; s < count; ++s) {
    int right;
    forward(m, ds->x + idx[s] * ds->cols, ds->y[idx[s]], &right);
    backward(m, ds->y[idx[s]]);
  }
  for (uint64_t j = 0; j < m->nparams; ++j) m->grads[j] = (float)(m->acc[j] / count);
}

void mlp_evaluate(model_t *m, const dataset_t *ds, double *loss_sum,
                  uint64_t *correct) {
  double loss = 0.0;
  uint64_t right_sum = 0;
  for (uint64_t row = 0; row < ds->rows; ++row) {
    int right;
    loss += forward(m, ds->x + row * ds->cols, ds->y[row], &right);
    right_sum += (uint64_t)right;
  }
  *loss_sum = loss;
  *correct = right_sum;
}
