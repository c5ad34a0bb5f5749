// Python view of the GGUF reader: _core.GgufFile, _core.TensorInfo and _core.GgufError.
// Metadata strings are decoded with errors="replace": GGUF does not promise UTF-8, and a stray
// byte in a tokenizer entry must not make the whole file unreadable from Python.
#include "python/python.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "quant/quant.h"

namespace py = pybind11;
using q35::GgufError;
using q35::GgufFile;
using q35::GgufKV;
using q35::GgufTensorInfo;
using q35::GgufValueType;

namespace {

py::str decode(const char* p, size_t n) {
  PyObject* s = PyUnicode_DecodeUTF8(p, static_cast<Py_ssize_t>(n), "replace");
  if (!s) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

py::str decode(const std::string& s) { return decode(s.data(), s.size()); }

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// A fixed-size scalar at p; nullptr-free because the parser validated every offset.
py::object scalar(GgufValueType t, const uint8_t* p) {
  switch (t) {
    case GgufValueType::U8: return py::int_(load<uint8_t>(p));
    case GgufValueType::I8: return py::int_(load<int8_t>(p));
    case GgufValueType::U16: return py::int_(load<uint16_t>(p));
    case GgufValueType::I16: return py::int_(load<int16_t>(p));
    case GgufValueType::U32: return py::int_(load<uint32_t>(p));
    case GgufValueType::I32: return py::int_(load<int32_t>(p));
    case GgufValueType::U64: return py::int_(load<uint64_t>(p));
    case GgufValueType::I64: return py::int_(load<int64_t>(p));
    case GgufValueType::F32: return py::float_(load<float>(p));
    case GgufValueType::F64: return py::float_(load<double>(p));
    case GgufValueType::BOOL: return py::bool_(load<uint8_t>(p) != 0);
    default: break;
  }
  return py::none();  // STRING and ARRAY are handled by value()
}


py::object value(const GgufFile& f, const GgufKV& kv) {
  const uint8_t* p = f.base() + kv.offset;
  if (kv.type == GgufValueType::STRING) {
    return decode(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(load<uint64_t>(p)));
  }
  if (kv.type != GgufValueType::ARRAY) return scalar(kv.type, p);
  py::list out(static_cast<size_t>(kv.arr_count));
  // Numeric arrays (token types, scores...) can be long: read them straight from the mapping.
  if (size_t size = gguf_value_size(kv.arr_type)) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = scalar(kv.arr_type, p + i * size);
    return std::move(out);
  }
  std::vector<GgufKV> elems = f.array_elements(kv);
  for (size_t i = 0; i < elems.size(); ++i) out[i] = value(f, elems[i]);
  return std::move(out);
}

py::dict metadata(const GgufFile& f) {
  py::dict d;
  for (const GgufKV& kv : f.kvs()) d[decode(kv.key)] = value(f, kv);
  return d;
}

py::tuple ne_tuple(const GgufTensorInfo& t, bool reversed) {
  py::tuple out(t.n_dims);
  for (uint32_t i = 0; i < t.n_dims; ++i) out[i] = py::int_(t.ne[reversed ? t.n_dims - 1 - i : i]);
  return out;
}

const GgufTensorInfo& tensor_or_key_error(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) throw py::key_error("no tensor named '" + name + "' in " + f.path());
  return *t;
}

// A read-only uint8 view of the tensor's bytes in the mapping. The array's base is the Python
// GgufFile, so the mapping lives as long as any view of it.
py::array tensor_bytes(const py::object& self, const std::string& name) {
  const GgufFile& f = self.cast<const GgufFile&>();
  const GgufTensorInfo& t = tensor_or_key_error(f, name);
  py::array out(py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(t.nbytes)}, {1},
                f.tensor_data(t), self);
  out.attr("flags").attr("writeable") = false;
  return out;
}

py::list str_list(const std::vector<std::string>& v) {
  py::list out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = decode(v[i]);
  return out;
}

// Paths may be str, bytes or os.PathLike; os.fsencode gives the bytes the OS expects.
std::string fs_path(const py::object& p) {
  return py::module_::import("os").attr("fsencode")(p).cast<std::string>();
}

void bind_tensor_info(py::module_& m) {
  py::class_<GgufTensorInfo>(m, "TensorInfo", "Where one tensor lies in a GGUF file.")
      .def_property_readonly("name", [](const GgufTensorInfo& t) { return decode(t.name); })
      .def_readonly("type", &GgufTensorInfo::type, "ggml type id")
      .def_property_readonly("type_name",
                             [](const GgufTensorInfo& t) { return q35::ref_type_traits(t.type)->name; })
      .def_property_readonly("ne", [](const GgufTensorInfo& t) { return ne_tuple(t, false); },
                             "dimensions as stored, ne0 (contiguous) first")
      .def_property_readonly("shape", [](const GgufTensorInfo& t) { return ne_tuple(t, true); },
                             "numpy order: reversed ne")
      .def_readonly("n_dims", &GgufTensorInfo::n_dims)
      .def_property_readonly("n_elements", &GgufTensorInfo::n_elements)
      .def_readonly("offset", &GgufTensorInfo::offset, "absolute file offset of the data")
      .def_readonly("nbytes", &GgufTensorInfo::nbytes)
      .def("__repr__", [](const GgufTensorInfo& t) {
        return py::str("TensorInfo(name={!r}, type={}, ne={}, offset={}, nbytes={})")
            .format(decode(t.name), q35::ref_type_traits(t.type)->name, ne_tuple(t, false), t.offset,
                    t.nbytes);
      });
}

void bind_file(py::module_& m) {
  py::class_<GgufFile>(m, "GgufFile", "A validated, memory-mapped GGUF v2/v3 file.")
      .def(py::init([](const py::object& path) {
             std::string p = fs_path(path);
             // Opening touches no Python objects, so other threads may run meanwhile.
             py::gil_scoped_release nogil;
             return std::make_unique<GgufFile>(p);
           }),
           py::arg("path"))
      .def_property_readonly("path", [](const GgufFile& f) { return decode(f.path()); })
      .def_property_readonly("version", &GgufFile::version)
      .def_property_readonly("file_size", &GgufFile::file_size)
      .def_property_readonly("alignment", &GgufFile::alignment)
      .def_property_readonly("data_offset", &GgufFile::data_offset)
      .def_property_readonly("metadata", &metadata, "dict of all metadata, in file order")
      .def_property_readonly("tensors", [](const GgufFile& f) {
        py::list out;
        for (const GgufTensorInfo& t : f.tensors()) out.append(py::cast(t));
        return out;
      })
      .def("tensor_info", &tensor_or_key_error, py::arg("name"))
      .def("tensor_bytes", &tensor_bytes, py::arg("name"),
           "read-only zero-copy uint8 view of a tensor's data")
      .def("has", &GgufFile::has, py::arg("key"))
      .def("__contains__", &GgufFile::has)
      .def("get_int", [](const GgufFile& f, const std::string& k) { return f.get_int(k); },
           py::arg("key"))
      .def("get_int", py::overload_cast<const std::string&, int64_t>(&GgufFile::get_int, py::const_),
           py::arg("key"), py::arg("default"))
      .def("get_float", [](const GgufFile& f, const std::string& k) { return f.get_float(k); },
           py::arg("key"))
      .def("get_float",
           py::overload_cast<const std::string&, double>(&GgufFile::get_float, py::const_),
           py::arg("key"), py::arg("default"))
      .def("get_str", [](const GgufFile& f, const std::string& k) { return decode(f.get_str(k)); },
           py::arg("key"))
      .def("get_int_array", &GgufFile::get_int_array, py::arg("key"))
      .def("get_float_array", &GgufFile::get_float_array, py::arg("key"))
      .def("get_str_array",
           [](const GgufFile& f, const std::string& k) { return str_list(f.get_str_array(k)); },
           py::arg("key"));
}

// GgufError -> _core.GgufError (a ValueError). Messages quote the path, which need not be
// UTF-8, so they are decoded with "replace" rather than the strict decoding pybind11 uses.
void bind_error(py::module_& m) {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> exc;
  exc.call_once_and_store_result(
      [&]() { return py::exception<GgufError>(m, "GgufError", PyExc_ValueError); });
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const GgufError& e) {
      py::str msg = decode(e.what(), std::strlen(e.what()));
      PyErr_SetObject(exc.get_stored().ptr(), msg.ptr());
    }
  });
}

}  // namespace

void bind_gguf(py::module_& m) {
  bind_error(m);
  bind_tensor_info(m);
  bind_file(m);
}
