// Split GGUF sets. The parts are found from the first part's name (llama.cpp derives them the
// same way), and each is checked against the first: its index, the part count and the total
// tensor count must agree, no tensor may appear twice, and the tensors of all parts together
// must be exactly the announced number. A wrong set is refused at load time, not by a
// missing-tensor error deep inside the model.
#include "gguf/split.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

namespace q35 {
namespace {

const char* kSplitNo = "split.no";
const char* kSplitCount = "split.count";
const char* kSplitTensors = "split.tensors.count";
constexpr int kMaxParts = 99999;  // five digits in the file name

bool is_regular_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool all_digits(const std::string& s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw GgufError(path + ": " + what);
}

}  // namespace

std::string GgufSet::part_path(const std::string& prefix, int no, int count) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05d-of-%05d.gguf", no + 1, count);
  return prefix + buf;
}

bool GgufSet::parse_part_path(const std::string& path, std::string* prefix, int* no, int* count) {
  // "-NNNNN-of-MMMMM.gguf" is 20 characters.
  const size_t n = path.size();
  if (n < 20) return false;
  const size_t at = n - 20;
  if (path[at] != '-' || path.compare(at + 6, 4, "-of-") != 0 || path.compare(n - 5, 5, ".gguf") != 0) {
    return false;
  }
  if (!all_digits(path, at + 1, 5) || !all_digits(path, at + 10, 5)) return false;
  *prefix = path.substr(0, at);
  *no = std::atoi(path.substr(at + 1, 5).c_str()) - 1;
  *count = std::atoi(path.substr(at + 10, 5).c_str());
  return true;
}

GgufSet::GgufSet(const std::string& path) {
  parts_.push_back(std::make_unique<GgufFile>(path));
  const GgufFile& first = *parts_.front();
  const int64_t count = first.get_int(kSplitCount, 1);
  const int64_t no = first.get_int(kSplitNo, 0);
  if (count < 1 || count > kMaxParts) {
    fail(path, "split.count " + std::to_string(count) + " is out of range 1.." + std::to_string(kMaxParts));
  }
  if (no < 0 || no >= count) {
    fail(path, "split.no " + std::to_string(no) + " is out of range for split.count " + std::to_string(count));
  }
  if (count == 1) return;
  open_parts(static_cast<int>(count));
}

void GgufSet::open_parts(int count) {
  const GgufFile& first = *parts_.front();
  const std::string& path = first.path();
  const int64_t no = first.get_int(kSplitNo, 0);
  std::string prefix;
  int name_no = 0, name_count = 0;
  const bool named = parse_part_path(path, &prefix, &name_no, &name_count);
  if (no != 0) {
    std::string hint = named ? "; load the first part, " + part_path(prefix, 0, count) : "";
    fail(path, "this is part " + std::to_string(no + 1) + " of " + std::to_string(count) +
                   " of a split model" + hint);
  }
  if (!named) {
    fail(path, "split.count is " + std::to_string(count) +
                   " but the file name does not follow <name>" + part_path("", 0, count) +
                   ", so the other parts cannot be found");
  }
  if (name_count != count || name_no != 0) {
    fail(path, "the file name says part " + std::to_string(name_no + 1) + " of " + std::to_string(name_count) +
                   ", but its metadata says part 1 of " + std::to_string(count));
  }
  const int64_t n_tensors = first.get_int(kSplitTensors);
  // A part numbered past the end is a leftover of some other split: refuse rather than guess.
  const std::string extra = part_path(prefix, count, count);
  if (is_regular_file(extra)) {
    fail(extra, "extra part: the split set has " + std::to_string(count) + " parts (split.count in " + path + ")");
  }

  for (int i = 1; i < count; ++i) {
    const std::string p = part_path(prefix, i, count);
    if (!is_regular_file(p)) {
      fail(p, "missing part " + std::to_string(i + 1) + " of " + std::to_string(count) + " of the split model " +
                  path);
    }
    parts_.push_back(std::make_unique<GgufFile>(p));
    const GgufFile& f = *parts_.back();
    if (!f.has(kSplitNo) || !f.has(kSplitCount) || !f.has(kSplitTensors)) {
      f.fail("not a part of a split model (split.no, split.count or split.tensors.count is missing)");
    }
    if (f.get_int(kSplitNo) != i || f.get_int(kSplitCount) != count || f.get_int(kSplitTensors) != n_tensors) {
      f.fail("mismatched part: its metadata says part " + std::to_string(f.get_int(kSplitNo) + 1) + " of " +
             std::to_string(f.get_int(kSplitCount)) + " with " + std::to_string(f.get_int(kSplitTensors)) +
             " tensors, expected part " + std::to_string(i + 1) + " of " + std::to_string(count) + " with " +
             std::to_string(n_tensors) + " (from " + path + ")");
    }
  }

  int64_t total = 0;
  for (const auto& part : parts_) {
    for (const GgufTensorInfo& t : part->tensors()) {
      auto ins = index_.emplace(t.name, Found{part.get(), &t});
      if (!ins.second) {
        part->fail("tensor '" + t.name + "' is also in " + ins.first->second.file->path() +
                   " (mismatched split parts)");
      }
      ++total;
    }
  }
  if (total != n_tensors) {
    fail(path, "the split parts hold " + std::to_string(total) + " tensors, but split.tensors.count is " +
                   std::to_string(n_tensors) + " (mismatched split parts)");
  }
}

std::vector<std::string> GgufSet::paths() const {
  std::vector<std::string> out;
  for (const auto& p : parts_) out.push_back(p->path());
  return out;
}

uint64_t GgufSet::total_size() const {
  uint64_t n = 0;
  for (const auto& p : parts_) n += p->file_size();
  return n;
}

GgufSet::Found GgufSet::find_tensor(const std::string& name) const {
  if (parts_.size() == 1) {
    const GgufTensorInfo* t = parts_.front()->find_tensor(name);
    return t ? Found{parts_.front().get(), t} : Found{nullptr, nullptr};
  }
  auto it = index_.find(name);
  return it == index_.end() ? Found{nullptr, nullptr} : it->second;
}

}  // namespace q35
