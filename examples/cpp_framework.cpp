// cpp_framework.cpp - how a C++ training framework embeds libmcgq: a tiny
// "framework" (parameters with a gradient, a module, an SGD optimizer) and a
// gradient hook that owns an mcgqComm_t (RAII) and replaces the all-reduce.
// Model: logistic regression on a per-rank shard of separable data.
//
//   mpirun -np 2 ./cpp_framework
//
// Exit status 0 when the training accuracy reaches 95% on every rank.
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <mcgq.h>
#include <mcgq_mpi.h>

namespace fw {

struct Parameter {
  std::vector<float> value, grad, accum;  // accum: mcgq's error feedback
  explicit Parameter(size_t n) : value(n, 0.0f), grad(n, 0.0f), accum(n, 0.0f) {}
};

// Data-parallel gradient synchronization through mcgq.
class CompressedAllReduce {
 public:
  CompressedAllReduce(MPI_Comm mpi, std::vector<Parameter *> params, double k) {
    check(mcgqCommInitMpi(&comm_, mpi), "mcgqCommInitMpi");
    std::vector<mcgqLayer_t> layers;
    for (Parameter *p : params) {
      mcgqLayer_t l{};
      l.struct_size = sizeof l;
      l.grad = p->grad.data();
      l.accum = p->accum.data();
      l.n = p->grad.size();
      l.cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
      l.cfg.k = k;
      l.cfg.accumulate = MCGQ_ACCUM_RESIDUAL;
      layers.push_back(l);
    }
    check(mcgqCommSetLayers(comm_, layers.data(), static_cast<int>(layers.size())),
          "mcgqCommSetLayers");
  }
  ~CompressedAllReduce() { mcgqCommDestroy(comm_); }
  CompressedAllReduce(const CompressedAllReduce &) = delete;
  CompressedAllReduce &operator=(const CompressedAllReduce &) = delete;

  // Averages every registered gradient in place; returns the wire ratio.
  double operator()(uint64_t step) {
    mcgqStepStats_t stats;
    check(mcgqCommStep(comm_, step, /*seed=*/1234, nullptr, &stats), "mcgqCommStep");
    return stats.wire_ratio;
  }

 private:
  void check(mcgqResult_t r, const char *what) {
    if (r != mcgqSuccess)
      throw std::runtime_error(std::string(what) + ": " + mcgqGetErrorString(r) + " (" +
                               (comm_ ? mcgqCommGetLastError(comm_) : "") + ")");
  }
  mcgqComm_t comm_ = nullptr;
};

struct LogisticRegression {
  Parameter w, b;
  explicit LogisticRegression(size_t dim) : w(dim), b(1) {}
  std::vector<Parameter *> parameters() { return {&w, &b}; }
  float logit(const float *x) const {
    float z = b.value[0];
    for (size_t j = 0; j < w.value.size(); ++j) z += w.value[j] * x[j];
    return z;
  }
};

}  // namespace fw

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const size_t dim = 100, samples = 400;
  std::mt19937 truth_rng(7), data_rng(100 + rank);
  std::normal_distribution<float> normal;
  std::vector<float> w_true(dim), x(samples * dim), y(samples);
  for (float &v : w_true) v = normal(truth_rng);
  for (size_t i = 0; i < samples; ++i) {
    float z = 0.0f;
    for (size_t j = 0; j < dim; ++j) z += w_true[j] * (x[i * dim + j] = normal(data_rng));
    y[i] = z > 0.0f ? 1.0f : 0.0f;
  }

  fw::LogisticRegression model(dim);
  int status = 0;
  try {
    fw::CompressedAllReduce sync(MPI_COMM_WORLD, model.parameters(), /*k=*/0.1);
    double accuracy = 0.0, ratio = 0.0;
    for (uint64_t step = 0; step < 200; ++step) {
      // Forward/backward of the mean logistic loss.
      for (fw::Parameter *p : model.parameters()) p->grad.assign(p->grad.size(), 0.0f);
      size_t correct = 0;
      for (size_t i = 0; i < samples; ++i) {
        float z = model.logit(&x[i * dim]);
        float p = 1.0f / (1.0f + std::exp(-z));
        correct += (p > 0.5f) == (y[i] > 0.5f);
        float d = (p - y[i]) / samples;
        for (size_t j = 0; j < dim; ++j) model.w.grad[j] += d * x[i * dim + j];
        model.b.grad[0] += d;
      }
      accuracy = double(correct) / samples;
      ratio = sync(step);  // the framework's gradient hook
      for (fw::Parameter *p : model.parameters())
        for (size_t j = 0; j < p->value.size(); ++j) p->value[j] -= 0.5f * p->grad[j];
    }
    std::printf("rank %d: accuracy %.3f, wire compression %.1fx\n", rank, accuracy, ratio);
    status = accuracy >= 0.95 ? 0 : 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int worst = 0;
  MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
