// Python bindings of the model and its sessions. Long calls release the GIL.
#include "python/python.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "model/session.h"

namespace py = pybind11;
using q35::Model;
using q35::Session;
using q35::SessionState;

namespace {

py::dict config_dict(const q35::Config& c) {
  py::dict d;
  d["n_layer"] = c.n_layer;
  d["n_embd"] = c.n_embd;
  d["n_vocab"] = c.n_vocab;
  d["n_ctx_train"] = c.n_ctx_train;
  d["rms_norm_eps"] = c.eps;
  d["n_head"] = c.n_head;
  d["n_head_kv"] = c.n_head_kv;
  d["head_dim"] = c.head_dim;
  d["n_rot"] = c.n_rot;
  d["rope_theta"] = c.rope_theta;
  d["rope_sections"] = std::vector<int>(c.rope_sections, c.rope_sections + 4);
  d["ssm_conv_kernel"] = c.ssm_conv_kernel;
  d["ssm_d_state"] = c.ssm_d_state;
  d["ssm_n_group"] = c.ssm_n_group;
  d["ssm_dt_rank"] = c.ssm_dt_rank;
  d["ssm_d_inner"] = c.ssm_d_inner;
  d["full_attn_interval"] = c.full_attn_interval;
  d["n_expert"] = c.n_expert;
  d["n_expert_used"] = c.n_expert_used;
  d["n_ff_exp"] = c.n_ff_exp;
  d["n_ff_shexp"] = c.n_ff_shexp;
  d["is_attn"] = c.is_attn;
  return d;
}

}  // namespace

void bind_model(py::module_& m) {
  py::register_exception<std::length_error>(m, "ContextFullError", PyExc_ValueError);

  py::class_<Model, std::shared_ptr<Model>>(m, "Model")
      .def(py::init([](const std::string& path, int n_threads, std::optional<bool> use_mmap) {
             const q35::WeightPlacement p = !use_mmap ? q35::WeightPlacement::Auto
                                            : *use_mmap ? q35::WeightPlacement::Mmap
                                                        : q35::WeightPlacement::Copy;
             py::gil_scoped_release nogil;
             return std::make_shared<Model>(path, n_threads, p);
           }),
           py::arg("path"), py::arg("n_threads") = 0, py::arg("use_mmap") = py::none(),
           "use_mmap: True reads the matrices through the file mapping, False copies them into anonymous "
           "huge-page memory, None (default) copies where that pays and fits.")
      .def_property_readonly("weights_copied", [](const Model& md) { return md.weight_copy() != nullptr; })
      .def_property_readonly("copied_bytes",
                             [](const Model& md) { return md.weight_copy() ? md.weight_copy()->bytes() : size_t{0}; })
      .def_property_readonly(
          "huge_page_bytes",
          [](const Model& md) { return md.weight_copy() ? md.weight_copy()->huge_page_bytes() : size_t{0}; },
          "bytes of the weight copy the kernel backs with huge pages now")
      .def_property_readonly("mmap_reason", &Model::mmap_reason, "why the matrices are not copied ('' when they are)")
      .def_property_readonly("config", [](const Model& md) { return config_dict(md.config()); })
      .def_property_readonly("path", [](const Model& md) { return md.file().path(); })
      .def_property_readonly("paths", [](const Model& md) { return md.files().paths(); },
                             "Every file of the model: one, or each part of a split set in order.")
      .def_property_readonly("file_size", [](const Model& md) { return md.files().total_size(); })
      .def_property_readonly("n_threads", [](const Model& md) { return md.pool().size(); });

  m.def(
      "read_config", [](const std::string& path) { return config_dict(q35::read_config(q35::GgufSet(path))); },
      py::arg("path"), "Hyper-parameters of a qwen35moe GGUF, checked, without loading weights.");

  py::class_<SessionState, std::shared_ptr<SessionState>>(
      m, "SessionState", "An opaque copy of a session's state (the KV rows in use, conv and recurrent state).")
      .def_property_readonly_static("chunk_rows", [](const py::object&) { return q35::KvChunk::kRows; },
                                    "KV positions per shareable chunk")
      .def_readonly("n_past", &SessionState::n_past)
      .def_property_readonly("nbytes", &SessionState::nbytes, "bytes of state data held")
      .def("serialized_size", &SessionState::serialized_size, py::arg("first_chunk") = 0,
           "len(serialize(first_chunk))")
      .def_static("shared_prefix_chunks", &SessionState::shared_prefix_chunks, py::arg("a"), py::arg("b"),
                  "Leading KV chunks a and b hold in common (the same objects, not copies).")
      .def(
          "serialize",
          [](const SessionState& s, size_t first_chunk) {
            const size_t n = s.serialized_size(first_chunk);
            // Filled in place: a large state is copied once, not twice.
            PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
            if (!b) throw py::error_already_set();
            auto* p = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(b));
            {
              py::gil_scoped_release nogil;
              s.serialize(p, first_chunk);
            }
            return py::reinterpret_steal<py::bytes>(b);
          },
          py::arg("first_chunk") = 0,
          "The state as a flat blob for files; SessionState.deserialize reads it back. With first_chunk "
          "k the first k KV chunks are left out: deserialize then needs a base holding them.")
      .def_static(
          "deserialize",
          [](const Model& md, const py::buffer& data, const SessionState* base) {
            py::buffer_info bi = data.request();
            if (bi.ndim != 1 || bi.itemsize != 1 || bi.strides[0] != 1)
              throw std::invalid_argument("session state blob must be a contiguous byte buffer");
            const auto* p = static_cast<const uint8_t*>(bi.ptr);
            const size_t n = static_cast<size_t>(bi.size);
            py::gil_scoped_release nogil;
            return std::make_shared<SessionState>(SessionState::deserialize(md.config(), p, n, base));
          },
          py::arg("model"), py::arg("data"), py::arg("base") = nullptr,
          "Parses a blob from serialize(), checked against the model's shapes; KV chunks equal to "
          "base's are shared with it.")
      .def_static(
          "nbytes_distinct",
          [](const std::vector<std::shared_ptr<SessionState>>& states) {
            std::vector<const SessionState*> ps;
            for (const auto& s : states) ps.push_back(s.get());
            return SessionState::nbytes_distinct(ps);
          },
          py::arg("states"), "Bytes held by these states together, each shared KV chunk counted once.");

  m.def(
      "gguf_parts", [](const std::string& path) { return q35::GgufSet(path).paths(); }, py::arg("path"),
      "Every file of a model: [path], or each part of a split set in order, checked as the loader checks them.");

  py::class_<Session>(m, "Session")
      .def(py::init([](std::shared_ptr<Model> model, int n_ctx) {
             return std::make_unique<Session>(std::move(model), n_ctx);
           }),
           py::arg("model"), py::arg("n_ctx"), py::keep_alive<1, 2>())
      .def(
          "eval",
          [](Session& s, py::array_t<int32_t, py::array::c_style | py::array::forcecast> ids, bool all_logits) {
            if (ids.ndim() != 1) throw std::invalid_argument("token ids must be a 1-D sequence");
            const int64_t n = ids.shape(0);
            const int64_t V = s.model().config().n_vocab;
            py::array_t<float> out = all_logits ? py::array_t<float>({n, V}) : py::array_t<float>({V});
            const int32_t* p = ids.data();
            float* o = out.mutable_data();
            {
              py::gil_scoped_release nogil;
              s.eval(p, n, all_logits, o);
            }
            return out;
          },
          py::arg("ids"), py::arg("all_logits") = false)
      .def("reset", &Session::reset)
      .def(
          "snapshot",
          [](const Session& s, const SessionState* base) { return std::make_shared<SessionState>(s.snapshot(base)); },
          py::arg("base") = nullptr, py::call_guard<py::gil_scoped_release>(),
          "A copy of the state; KV chunks equal to base's are shared with it instead of copied.")
      .def("restore", &Session::restore, py::arg("state"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("n_past", &Session::n_past)
      .def_property_readonly("n_ctx", &Session::n_ctx)
      .def("set_profiling", &Session::set_profiling, py::arg("on"),
           "Opt-in per-op timing of eval (a clock read per op; off by default).")
      .def(
          "op_times",
          [](const Session& s) {
            py::dict d;
            for (const auto& kv : s.op_times()) d[py::str(kv.first)] = kv.second;
            return d;
          },
          "Seconds per op (embed, norm_residual, attention, deltanet, moe_router, moe_experts, lm_head) "
          "summed over eval calls while profiling was on, since the last reset_op_times().")
      .def("reset_op_times", &Session::reset_op_times);
}
