// Bindings of the nearest-neighbour family: exact search (ExactIndex, knn)
// and the HNSW graph index (HnswIndex).
//
// Every method that takes an index's lock releases the GIL first: add and
// search poll for Ctrl-C (which takes the GIL) while they hold the lock, so a
// thread waiting for the lock with the GIL held would deadlock them.
#include <fstream>
#include <sstream>

#include "common.hpp"

#include "rankfold/ann/exact.hpp"
#include "rankfold/ann/hnsw.hpp"
#include "rankfold/core/memory.hpp"

namespace rankfold {
namespace bindings {

namespace {

// The (nq, k) id and distance arrays of a search, refused before anything is
// allocated when they cannot fit in memory (k is not bounded by the index
// size: results are padded, and a huge k would otherwise be accepted by the
// kernel's overcommit and fill gigabytes of padding).
template <typename T>
std::pair<py::array_t<index_t>, py::array_t<T>> search_result(index_t nq, int k) {
  require_fits_in_memory(saturating_mul(saturating_mul(std::int64_t{nq}, std::int64_t{k}),
                                        std::uint64_t{sizeof(index_t) + sizeof(T)}),
                         "the search result (", nq, " queries x k = ", k, ")");
  auto ids = new_matrix<index_t>(nq, k);
  auto dist = new_matrix<T>(nq, k);
  return {std::move(ids), std::move(dist)};
}

template <typename Index>
py::array_t<bool> contains_many(const Index& self, const CArray<index_t>& ids) {
  py::array_t<bool> out(ids.size());
  bool* po = out.mutable_data();
  const index_t* pi = ids.data();
  const index_t n = ids.size();
  py::gil_scoped_release release;
  self.contains(pi, n, po);
  return out;
}

template <typename Index>
py::array_t<float> vectors_of(const Index& self, const CArray<index_t>& ids) {
  require_fits_in_memory(saturating_mul(std::int64_t{ids.size()}, 4 * std::int64_t{self.dim()}),
                         "the vectors of ", ids.size(), " ids");
  auto out = new_matrix<float>(ids.size(), self.dim());
  const index_t* pi = ids.data();
  const index_t n = ids.size();
  float* po = out.mutable_data();
  {
    py::gil_scoped_release release;
    self.get_vectors(pi, n, po);
  }
  return out;
}

py::array_t<index_t> id_array(const std::vector<index_t>& labels) {
  py::array_t<index_t> out(static_cast<py::ssize_t>(labels.size()));
  std::copy(labels.begin(), labels.end(), out.mutable_data());
  return out;
}

template <typename Index>
py::bytes index_bytes(const Index& self) {
  std::string blob;
  {
    py::gil_scoped_release release;
    std::ostringstream out(std::ios::binary);
    self.save(out);
    blob = std::move(out).str();
  }
  return py::bytes(blob);
}

template <typename T>
py::tuple knn(const CArray<T>& X, const CArray<T>& Q, int k, const std::string& metric_name,
              int n_threads) {
  const Metric metric = metric_from_string(metric_name);
  check_matrix(X, "X");
  const index_t d = X.shape(1), n = X.shape(0);
  check_matrix(Q, "Q", d);
  require(k >= 1, "k must be >= 1, got ", k);
  const index_t nq = Q.shape(0);
  auto [ids, dist] = search_result<T>(nq, k);
  const T* px = X.data();
  const T* pq = Q.data();
  index_t* pi = ids.mutable_data();
  T* pd = dist.mutable_data();
  with_interrupts([&](Cancellation& cancel) {
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
      exact_search_packed(packed, nullptr, pq, nq, k, metric, pi, pd, n_threads, &cancel);
    } else {
      std::vector<T> norms(static_cast<std::size_t>(metric == Metric::L2 ? n : 0));
      if (metric == Metric::L2) row_sqnorms(px, n, d, norms.data(), n_threads);
      ExactSearchOptions opt;
      opt.cancel = &cancel;
      exact_search<T>(px, n, d, norms.data(), nullptr, pq, nq, k, metric, pi, pd, n_threads, opt);
    }
  });
  return py::make_tuple(ids, dist);
}

}  // namespace


namespace {

CArray<index_t> optional_ids(const py::object& ids, index_t n, const char* name) {
  CArray<index_t> arr = ids.cast<CArray<index_t>>();
  require(arr.ndim() == 1 && (n < 0 || arr.shape(0) == n), name, " must be a 1-D array with one entry per row");
  return arr;
}

void register_hnsw(py::module_& m) {
  py::class_<HnswIndex>(m, "HnswIndex")
      .def(py::init([](index_t dim, const std::string& metric, int M, int ef_construction, std::uint64_t seed) {
             return std::make_unique<HnswIndex>(dim, metric_from_string(metric), M, ef_construction, seed);
           }),
           py::arg("dim"), py::arg("metric"), py::arg("M"), py::arg("ef_construction"), py::arg("seed"))
      .def_property_readonly("dim", &HnswIndex::dim)
      .def_property_readonly("metric", [](const HnswIndex& self) { return std::string(metric_name(self.metric())); })
      .def_property_readonly("M", &HnswIndex::M)
      .def_property_readonly("ef_construction", &HnswIndex::ef_construction)
      .def_property("ef", &HnswIndex::ef, &HnswIndex::set_ef)
      .def_property_readonly("next_label", [](const HnswIndex& self) {
        py::gil_scoped_release release;
        return self.next_label();
      })
      .def_property_readonly("capacity", [](const HnswIndex& self) {
        py::gil_scoped_release release;
        return self.capacity();
      })
      .def("__len__", &HnswIndex::size, py::call_guard<py::gil_scoped_release>())
      .def("exact_filter_threshold", &HnswIndex::exact_filter_threshold, py::arg("ef"),
           py::call_guard<py::gil_scoped_release>())
      .def("reserve",
           [](HnswIndex& self, index_t n) {
             py::gil_scoped_release release;
             self.reserve(n);
           })
      .def(
          "add",
          [](HnswIndex& self, const CArray<float>& X, py::object ids, int n_threads) {
            check_matrix(X, "X", self.dim());
            const index_t n = X.shape(0);
            CArray<index_t> ids_arr;
            const index_t* labels = nullptr;
            if (!ids.is_none()) {
              ids_arr = optional_ids(ids, n, "ids");
              labels = ids_arr.data();
            }
            const float* px = X.data();
            with_interrupts([&](Cancellation& cancel) { self.add(px, n, labels, n_threads, &cancel); });
          },
          py::arg("X"), py::arg("ids"), py::arg("n_threads"))
      .def(
          "search",
          [](const HnswIndex& self, const CArray<float>& Q, int k, int ef, py::object filter_ids,
             py::object filter_mask, int n_threads) {
            check_matrix(Q, "Q", self.dim());
            require(k >= 1, "k must be >= 1, got ", k);
            const index_t nq = Q.shape(0);
            auto [ids, dist] = search_result<float>(nq, k);
            CArray<index_t> fid;
            py::array_t<std::uint8_t, py::array::c_style> fmask;
            if (!filter_ids.is_none()) fid = optional_ids(filter_ids, -1, "filter");
            if (!filter_mask.is_none()) {
              fmask = filter_mask.cast<py::array_t<std::uint8_t, py::array::c_style>>();
              require(fmask.ndim() == 1, "filter must be 1-D");
            }
            const bool has_ids = !filter_ids.is_none(), has_mask = !filter_mask.is_none();
            require(!(has_ids && has_mask), "filter: pass allowed ids or a mask, not both");
            HnswFilter filter;
            if (has_ids) {
              filter.ids = fid.data();
              filter.n_ids = fid.shape(0);
            }
            if (has_mask) {
              filter.use_mask = true;
              filter.mask = fmask.data();
              filter.n_mask = fmask.shape(0);
            }
            const float* pq = Q.data();
            index_t* pi = ids.mutable_data();
            float* pd = dist.mutable_data();
            with_interrupts([&](Cancellation& cancel) {
              self.search(pq, nq, k, ef, (has_ids || has_mask) ? &filter : nullptr, pi, pd, n_threads, &cancel);
            });
            return py::make_tuple(ids, dist);
          },
          py::arg("Q"), py::arg("k"), py::arg("ef"), py::arg("filter_ids"), py::arg("filter_mask"),
          py::arg("n_threads"))
      .def(
          "remove",
          [](HnswIndex& self, const CArray<index_t>& ids, int n_threads) {
            const index_t* p = ids.data();
            const index_t n = ids.size();
            with_interrupts([&](Cancellation& cancel) { self.remove(p, n, n_threads, cancel); });
          },
          py::arg("ids"), py::arg("n_threads"))
      .def("compact",
           [](HnswIndex& self) {
             py::gil_scoped_release release;
             self.compact();
           })
      .def("contains", &contains_many<HnswIndex>)
      .def("get_vectors", &vectors_of<HnswIndex>)
      .def("ids",
           [](const HnswIndex& self) {
             std::vector<index_t> labels;
             {
               py::gil_scoped_release release;
               labels = self.live_labels();
             }
             return id_array(labels);
           })
      .def("stats",
           [](const HnswIndex& self) {
             HnswStats st;
             {
               py::gil_scoped_release release;
               st = self.stats();
             }
             py::dict d;
             d["size"] = st.size;
             d["slots"] = st.slots;
             d["capacity"] = st.capacity;
             d["removed"] = st.removed;
             d["max_level"] = st.max_level;
             py::list levels;
             for (index_t c : st.nodes_per_level) levels.append(c);
             d["nodes_per_level"] = levels;
             d["mean_degree0"] = st.mean_degree0;
             d["memory_bytes"] = st.memory_bytes;
             d["bytes_per_vector"] = st.bytes_per_node;
             return d;
           })
      .def("save",
           [](const HnswIndex& self, const std::string& path) {
             py::gil_scoped_release release;
             std::ofstream out(path, std::ios::binary | std::ios::trunc);
             require(static_cast<bool>(out), "cannot open '", path, "' for writing");
             self.save(out);
           })
      .def("to_bytes", &index_bytes<HnswIndex>)
      .def_static("load",
                  [](const std::string& path) {
                    py::gil_scoped_release release;
                    const std::vector<char> buffer = io::read_file(path);
                    return HnswIndex::load(buffer.data(), buffer.size(), "'" + path + "'");
                  })
      .def_static("from_buffer", [](const py::buffer& data, const std::string& what) {
        const py::buffer_info info = data.request();
        require(info.ndim == 1 && info.itemsize == 1, "the index buffer must be a 1-D byte buffer");
        const char* p = static_cast<const char*>(info.ptr);
        const std::size_t n = static_cast<std::size_t>(info.size);
        py::gil_scoped_release release;
        return HnswIndex::load(p, n, what);
      });
}

// Row-wise distance kernels of two (n x d) float32 matrices, as graph search
// calls them: "l2" (squared L2), "dot", or "l2_bounded" (squared L2 with the
// early exit at `bound`). For tests of every SIMD level's kernels.
py::array_t<float> paired_distances(const CArray<float>& X, const CArray<float>& Y, const std::string& kind,
                                    float bound) {
  check_matrix(X, "X");
  check_matrix(Y, "Y", X.shape(1));
  require(Y.shape(0) == X.shape(0), "X and Y must have the same number of rows");
  require(kind == "l2" || kind == "dot" || kind == "l2_bounded", "kind must be 'l2', 'dot' or 'l2_bounded', got '",
          kind, "'");
  const index_t n = X.shape(0), d = X.shape(1);
  py::array_t<float> out(n);
  const float* px = X.data();
  const float* py_ = Y.data();
  float* po = out.mutable_data();
  {
    py::gil_scoped_release release;
    for (index_t i = 0; i < n; ++i) {
      const float* a = px + i * d;
      const float* b = py_ + i * d;
      const auto len = static_cast<std::size_t>(d);
      po[i] = kind == "l2" ? l2_sq(a, b, len) : kind == "dot" ? dot(a, b, len) : l2_sq_bounded(a, b, len, bound);
    }
  }
  return out;
}

}  // namespace

void register_ann(py::module_& m) {
  register_hnsw(m);
  m.def("paired_distances", &paired_distances, py::arg("X"), py::arg("Y"), py::arg("kind"), py::arg("bound") = 0.f,
        "Row-wise l2 / dot / bounded-l2 kernels of the active SIMD level (for tests).");
  m.def("knn", &knn<float>, py::arg("X"), py::arg("Q"), py::arg("k"), py::arg("metric"), py::arg("n_threads"));
  m.def("knn", &knn<double>, py::arg("X"), py::arg("Q"), py::arg("k"), py::arg("metric"), py::arg("n_threads"));

  py::class_<ExactIndex>(m, "ExactIndex")
      .def(py::init([](index_t dim, const std::string& metric) {
             return std::make_unique<ExactIndex>(dim, metric_from_string(metric));
           }),
           py::arg("dim"), py::arg("metric"))
      .def_property_readonly("dim", &ExactIndex::dim)
      .def_property_readonly("metric", [](const ExactIndex& self) { return std::string(metric_name(self.metric())); })
      .def_property_readonly("next_label", [](const ExactIndex& self) {
        py::gil_scoped_release release;
        return self.next_label();
      })
      .def("__len__", &ExactIndex::size, py::call_guard<py::gil_scoped_release>())
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
            auto [ids, dist] = search_result<float>(nq, k);
            const float* pq = Q.data();
            index_t* pi = ids.mutable_data();
            float* pd = dist.mutable_data();
            with_interrupts([&](Cancellation& cancel) { self.search(pq, nq, k, pi, pd, n_threads, &cancel); });
            return py::make_tuple(ids, dist);
          },
          py::arg("Q"), py::arg("k"), py::arg("n_threads"))
      .def("contains", &contains_many<ExactIndex>)
      .def("get_vectors", &vectors_of<ExactIndex>)
      .def("ids",
           [](const ExactIndex& self) {
             std::vector<index_t> labels;
             {
               py::gil_scoped_release release;
               labels = self.labels();
             }
             return id_array(labels);
           })
      .def("save",
           [](const ExactIndex& self, const std::string& path) {
             py::gil_scoped_release release;
             std::ofstream out(path, std::ios::binary | std::ios::trunc);
             require(static_cast<bool>(out), "cannot open '", path, "' for writing");
             self.save(out);
           })
      .def("to_bytes", &index_bytes<ExactIndex>)
      .def_static("load",
                  [](const std::string& path, int n_threads) {
                    py::gil_scoped_release release;
                    const std::vector<char> buffer = io::read_file(path);
                    return ExactIndex::load(buffer.data(), buffer.size(), "'" + path + "'", n_threads);
                  })
      .def_static("from_bytes", [](const py::bytes& data, int n_threads) {
        const std::string_view view = data;  // `data` stays alive for the call
        py::gil_scoped_release release;
        return ExactIndex::load(view.data(), view.size(), "the byte string", n_threads);
      });
}

}  // namespace bindings
}  // namespace rankfold
