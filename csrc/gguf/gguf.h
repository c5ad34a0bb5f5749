// gguf/: GGUF files. What lives here: the reader (this header; reader.cpp) and split sets as
// llama.cpp's gguf-split writes them (split.h).
// Depends on: quant/ (each type's block size and bytes, to check tensor sizes), the C++ standard
// library and the OS. Knows nothing of kernels or the model.
//
// GGUF v2/v3 reader: mmaps the file, validates every length, offset and size against the file
// size, and hands out zero-copy pointers into the mapping. Nothing is copied but the metadata
// scalars; arrays are decoded on demand straight from the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace q35 {

// Thrown for every malformed or unusable file; what() is "<path>: <what is wrong>".
struct GgufError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// GGUF metadata value types (the numbers stored in the file).
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

// Bytes of a fixed-size value; 0 for STRING and ARRAY, whose size depends on their contents.
uint64_t gguf_value_size(GgufValueType t);

struct GgufKV {
  std::string key;
  GgufValueType type;
  // For ARRAY: the element type and count. Elements start at `offset` in the mapping.
  GgufValueType arr_type = GgufValueType::U8;
  uint64_t arr_count = 0;
  uint64_t offset = 0;  // file offset of the value (of the first element for arrays)
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] contiguous; unused dims are 1
  uint32_t type = 0;             // ggml type id
  uint64_t offset = 0;           // absolute file offset of the data
  uint64_t nbytes = 0;
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufParser;

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<GgufKV>& kvs() const { return kvs_; }
  const GgufKV* find_kv(const std::string& key) const;  // nullptr if absent
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr if absent
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return base_ + t.offset; }
  const uint8_t* base() const { return base_; }

  // Typed getters. They throw GgufError("<path>: metadata key K ...") when the key is missing
  // or holds an incompatible type. Integer getters accept any integer or bool type.
  bool has(const std::string& key) const { return find_kv(key) != nullptr; }
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key) const;  // accepts F32/F64 and integers
  double get_float(const std::string& key, double dflt) const;
  std::string get_str(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<std::string> get_str_array(const std::string& key) const;

  // Decoding helpers for the bindings: scalar at kv.offset, array element i.
  int64_t kv_int(const GgufKV& kv) const;
  double kv_float(const GgufKV& kv) const;
  std::string kv_str(const GgufKV& kv) const;
  // The elements of an ARRAY value, each described like a top-level value (empty key, offset
  // of the element); an element that is itself an array can be expanded again.
  std::vector<GgufKV> array_elements(const GgufKV& arr) const;
  static const char* value_type_name(GgufValueType t);  // "uint32", "string", ...

  [[noreturn]] void fail(const std::string& what) const;  // throws GgufError("<path>: what")

 private:
  friend class GgufParser;  // the parse steps, kept in gguf.cpp
  void map_file();
  void release() noexcept;  // munmap + close; safe to call twice

  std::string path_;
  int fd_ = -1;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace q35
