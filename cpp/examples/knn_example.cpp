// A C++ program using rankfold's kernels directly, without Python:
// builds an exact index over random vectors and prints a query's neighbours.
#include <cstdio>
#include <vector>

#include <rankfold/ann/exact.hpp>
#include <rankfold/core/rng.hpp>

int main() {
  const rankfold::index_t n = 10000, dim = 32, k = 5;
  rankfold::Rng rng(7);
  std::vector<float> X(n * dim);
  for (auto& v : X) v = static_cast<float>(rng.normal());

  rankfold::ExactIndex index(dim, rankfold::Metric::L2);
  index.add(X.data(), n, nullptr, /*n_threads=*/0);

  // Query with vector 42: its own id must come first, at distance 0.
  std::vector<rankfold::index_t> ids(k);
  std::vector<float> dist(k);
  index.search(X.data() + 42 * dim, 1, k, ids.data(), dist.data(), 0);
  for (int i = 0; i < k; ++i) std::printf("%lld %.4f\n", static_cast<long long>(ids[i]), dist[i]);
  return ids[0] == 42 && dist[0] < 1e-3f ? 0 : 1;
}
