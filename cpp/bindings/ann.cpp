// Bindings of the nearest-neighbour family: exact search (ExactIndex, knn).
#include <sstream>

#include "common.hpp"

#include "rankfold/ann/exact.hpp"

namespace rankfold {
namespace bindings {

namespace {

template <typename T>
py::tuple knn(const CArray<T>& X, const CArray<T>& Q, int k, const std::string& metric_name,
              int n_threads) {
  const Metric metric = metric_from_string(metric_name);
  check_matrix(X, "X");
  const index_t d = X.shape(1), n = X.shape(0);
  check_matrix(Q, "Q", d);
  require(k >= 1, "k must be >= 1, got ", k);
  const index_t nq = Q.shape(0);
  auto ids = new_matrix<index_t>(nq, k);
  auto dist = new_matrix<T>(nq, k);
  const T* px = X.data();
  const T* pq = Q.data();
  index_t* pi = ids.mutable_data();
  T* pd = dist.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<T> xn, qn;
    if (metric == Metric::Cosine) {
      xn.assign(px, px + n * d);
      qn.assign(pq, pq + nq * d);
      normalize_rows(xn.data(), n, d, n_threads, "X");
      normalize_rows(qn.data(), nq, d, n_threads, "Q");
      px = xn.data();
      pq = qn.data();
    }
    if constexpr (std::is_same<T, float>::value) {
      // Packing costs one pass over X; the fused kernel repays it at once.
      PackedVectors packed(d, metric == Metric::L2);
      packed.append(px, n, n_threads);
      exact_search_packed(packed, nullptr, pq, nq, k, metric, pi, pd, n_threads);
    } else {
      std::vector<T> norms(static_cast<std::size_t>(metric == Metric::L2 ? n : 0));
      if (metric == Metric::L2) row_sqnorms(px, n, d, norms.data(), n_threads);
      exact_search<T>(px, n, d, norms.data(), nullptr, pq, nq, k, metric, pi, pd, n_threads);
    }
  }
  return py::make_tuple(ids, dist);
}

}  // namespace

void register_ann(py::module_& m) {
  m.def("knn", &knn<float>, py::arg("X"), py::arg("Q"), py::arg("k"), py::arg("metric"), py::arg("n_threads"));
  m.def("knn", &knn<double>, py::arg("X"), py::arg("Q"), py::arg("k"), py::arg("metric"), py::arg("n_threads"));

  py::class_<ExactIndex>(m, "ExactIndex")
      .def(py::init([](index_t dim, const std::string& metric) { return ExactIndex(dim, metric_from_string(metric)); }),
           py::arg("dim"), py::arg("metric"))
      .def_property_readonly("dim", &ExactIndex::dim)
      .def_property_readonly("metric", [](const ExactIndex& self) { return std::string(metric_name(self.metric())); })
      .def_property_readonly("next_label", &ExactIndex::next_label)
      .def("__len__", &ExactIndex::size)
      .def(
          "add",
          [](ExactIndex& self, const CArray<float>& X, py::object ids, int n_threads) {
            check_matrix(X, "X", self.dim());
            const index_t n = X.shape(0);
            const index_t* labels = nullptr;
            CArray<index_t> ids_arr;
            if (!ids.is_none()) {
              ids_arr = ids.cast<CArray<index_t>>();
              require(ids_arr.ndim() == 1 && ids_arr.shape(0) == n, "ids must have one entry per row of X");
              labels = ids_arr.data();
            }
            const float* px = X.data();
            py::gil_scoped_release release;
            self.add(px, n, labels, n_threads);
          },
          py::arg("X"), py::arg("ids"), py::arg("n_threads"))
      .def(
          "search",
          [](const ExactIndex& self, const CArray<float>& Q, int k, int n_threads) {
            check_matrix(Q, "Q", self.dim());
            require(k >= 1, "k must be >= 1, got ", k);
            const index_t nq = Q.shape(0);
            auto ids = new_matrix<index_t>(nq, k);
            auto dist = new_matrix<float>(nq, k);
            const float* pq = Q.data();
            index_t* pi = ids.mutable_data();
            float* pd = dist.mutable_data();
            {
              py::gil_scoped_release release;
              self.search(pq, nq, k, pi, pd, n_threads);
            }
            return py::make_tuple(ids, dist);
          },
          py::arg("Q"), py::arg("k"), py::arg("n_threads"))
      .def("contains",
           [](const ExactIndex& self, const CArray<index_t>& ids) {
             py::array_t<bool> out(ids.size());
             auto* po = out.mutable_data();
             const index_t* pi = ids.data();
             for (py::ssize_t i = 0; i < ids.size(); ++i) po[i] = self.contains(pi[i]);
             return out;
           })
      .def("get_vectors",
           [](const ExactIndex& self, const CArray<index_t>& ids) {
             auto out = new_matrix<float>(ids.size(), self.dim());
             self.get_vectors(ids.data(), ids.size(), out.mutable_data());
             return out;
           })
      .def("ids",
           [](const ExactIndex& self) {
             const auto& labels = self.labels();
             py::array_t<index_t> out(static_cast<py::ssize_t>(labels.size()));
             std::copy(labels.begin(), labels.end(), out.mutable_data());
             return out;
           })
      .def("save",
           [](const ExactIndex& self, const std::string& path) {
             py::gil_scoped_release release;
             std::ofstream out(path, std::ios::binary | std::ios::trunc);
             require(static_cast<bool>(out), "cannot open '", path, "' for writing");
             self.save(out);
           })
      .def("to_bytes",
           [](const ExactIndex& self) {
             std::ostringstream out(std::ios::binary);
             self.save(out);
             return py::bytes(out.str());
           })
      .def_static("load",
                  [](const std::string& path, int n_threads) {
                    py::gil_scoped_release release;
                    const std::vector<char> buffer = io::read_file(path);
                    return ExactIndex::load(buffer.data(), buffer.size(), "'" + path + "'", n_threads);
                  })
      .def_static("from_bytes", [](const py::bytes& data, int n_threads) {
        const std::string_view view = data;
        return ExactIndex::load(view.data(), view.size(), "the byte string", n_threads);
      });
}

}  // namespace bindings
}  // namespace rankfold
