// A model stored as one GGUF file or as a split set written by llama.cpp's gguf-split
// (`<prefix>-00001-of-0000N.gguf` ...): the first part holds all metadata, every part carries
// `split.no` (u16), `split.count` (u16) and `split.tensors.count` (i32), and the tensors are
// spread over the parts. GgufSet maps every part and looks tensors up across all of them.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf/gguf.h"

namespace q35 {

class GgufSet {
 public:
  // Opens `path`; when it is the first part of a split set, opens and validates the others too.
  // Throws GgufError (one line, naming the file) for a missing, extra or mismatched part.
  explicit GgufSet(const std::string& path);

  const GgufFile& meta() const { return *parts_.front(); }  // the first part: all metadata
  size_t n_parts() const { return parts_.size(); }
  const GgufFile& part(size_t i) const { return *parts_[i]; }
  std::vector<std::string> paths() const;
  uint64_t total_size() const;

  struct Found {
    const GgufFile* file;
    const GgufTensorInfo* info;
    const uint8_t* data() const { return file->tensor_data(*info); }
  };
  // {nullptr, nullptr} if no part holds `name`.
  Found find_tensor(const std::string& name) const;

  // "<prefix>-%05d-of-%05d.gguf" for part `no` (0-based) of `count`, as llama.cpp names them.
  static std::string part_path(const std::string& prefix, int no, int count);
  // Splits "<prefix>-NNNNN-of-MMMMM.gguf" into its parts; false if `path` is not so named.
  static bool parse_part_path(const std::string& path, std::string* prefix, int* no, int* count);

 private:
  void open_parts(int count);
  std::vector<std::unique_ptr<GgufFile>> parts_;
  std::unordered_map<std::string, Found> index_;  // only filled for split sets
};

}  // namespace q35
