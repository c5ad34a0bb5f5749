// GGUF reader. Every count, length and offset in a GGUF file is untrusted: the parser reads
// through a bounds-checked cursor, does all size arithmetic with overflow-checked helpers, and
// checks each count against the bytes that are left before walking it, so a hostile file costs
// at most one pass over its own bytes and never reads outside the mapping.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

#include "quant/quant.h"

// Values and tensor data are used in place, so the host must share the file's byte order.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "qwen35cpu reads little-endian GGUF files in place and needs a little-endian host"
#endif

namespace q35 {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
// Smallest possible encodings, used to refuse counts the remaining bytes cannot hold before
// anything is allocated or walked.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset
constexpr uint64_t kArrayHeaderBytes = 4 + 8;            // element type + count
// Real files nest arrays at most once or twice; the limit keeps the recursive walk (and the
// Python conversion) off the end of the stack for a file that nests millions deep.
constexpr int kMaxArrayDepth = 32;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxNameInMessage = 120;

bool checked_add(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

std::string to_dec(uint64_t v) { return std::to_string(v); }

// Names and keys come from the file: quote them with non-printable bytes escaped and long ones
// cut, so an error message stays one readable, valid UTF-8 line.
std::string quoted(const std::string& s) {
  std::string out = "'";
  size_t n = std::min(s.size(), kMaxNameInMessage);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > n) out += "...";
  out += "'";
  return out;
}

const char* vtype_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: return "uint8";
    case GgufValueType::I8: return "int8";
    case GgufValueType::U16: return "uint16";
    case GgufValueType::I16: return "int16";
    case GgufValueType::U32: return "uint32";
    case GgufValueType::I32: return "int32";
    case GgufValueType::F32: return "float32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::U64: return "uint64";
    case GgufValueType::I64: return "int64";
    case GgufValueType::F64: return "float64";
  }
  return "unknown";
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }


bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16:
    case GgufValueType::I16: case GgufValueType::U32: case GgufValueType::I32:
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}

bool is_number(GgufValueType t) {
  return is_integer(t) || t == GgufValueType::F32 || t == GgufValueType::F64;
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // unaligned and strict-aliasing safe
  return v;
}

// Sequential reader over the mapping. Every read is checked against the file size; `context`
// names the entry being parsed so a truncation error says where it happened.
class Cursor {
 public:
  Cursor(const GgufFile& file, const uint8_t* base, uint64_t size, uint64_t pos)
      : file_(file), base_(base), size_(size), pos_(pos) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  void set_context(std::string c) { context_ = std::move(c); }
  const std::string& context() const { return context_; }

  void need(uint64_t n, const char* what) const {
    if (n > left()) {
      file_.fail("truncated file: " + where() + what + " at offset " + to_dec(pos_) + " needs " +
                 to_dec(n) + " bytes, but the file ends at byte " + to_dec(size_));
    }
  }
  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += n;
  }
  uint32_t u32(const char* what) { return read<uint32_t>(what); }
  uint64_t u64(const char* what) { return read<uint64_t>(what); }

  // A string is a u64 length followed by that many bytes (no terminator, any encoding).
  std::string str(const char* what) {
    uint64_t len = u64(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }
  void skip_str(const char* what) { skip(u64(what), what); }

  [[noreturn]] void fail(const std::string& what) const { file_.fail(where() + what); }

 private:
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v = load<T>(base_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string where() const { return context_.empty() ? std::string() : context_ + ": "; }

  const GgufFile& file_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_;
  std::string context_;
};

GgufValueType read_value_type(Cursor& c, const char* what) {
  uint64_t at = c.pos();
  uint32_t t = c.u32(what);
  if (!known_value_type(t)) {
    c.fail(std::string("unknown ") + what + " " + to_dec(t) + " at offset " + to_dec(at));
  }
  return static_cast<GgufValueType>(t);
}

// Reads an array header and checks that `count` elements could fit in what is left, before
// any element is walked: a huge count is refused in O(1) and count * size cannot overflow.
void read_array_header(Cursor& c, GgufValueType* elem_type, uint64_t* count) {
  *elem_type = read_value_type(c, "array element type");
  uint64_t at = c.pos();
  *count = c.u64("array count");
  uint64_t min_elem = gguf_value_size(*elem_type);
  if (*elem_type == GgufValueType::STRING) min_elem = 8;
  if (*elem_type == GgufValueType::ARRAY) min_elem = kArrayHeaderBytes;
  if (*count > c.left() / min_elem) {
    c.fail("array count " + to_dec(*count) + " at offset " + to_dec(at) + " of " +
           vtype_name(*elem_type) + " elements (at least " + to_dec(min_elem) +
           " bytes each) cannot fit in the " + to_dec(c.left()) +
           " bytes left in the file (truncated or corrupt file)");
  }
}

// Walks over one value of type `t`, checking every length and count on the way.
void skip_value(Cursor& c, GgufValueType t, int depth) {
  if (t == GgufValueType::STRING) {
    c.skip_str("string value");
    return;
  }
  if (t != GgufValueType::ARRAY) {
    c.skip(gguf_value_size(t), vtype_name(t));
    return;
  }
  if (depth >= kMaxArrayDepth) {
    c.fail("arrays nested more than " + to_dec(kMaxArrayDepth) + " deep at offset " +
           to_dec(c.pos()));
  }
  GgufValueType et;
  uint64_t count;
  read_array_header(c, &et, &count);
  uint64_t size = gguf_value_size(et);
  if (size != 0) {
    c.skip(count * size, "array elements");  // count <= left / size: no overflow
    return;
  }
  for (uint64_t i = 0; i < count; ++i) skip_value(c, et, depth + 1);
}

std::string os_error(const char* op) { return std::string(op) + ": " + std::strerror(errno); }

std::string dims_text(const GgufTensorInfo& t) {
  std::string s = "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
  return s + "]";
}

// Decoders for values the parser has already validated: offsets and lengths are trusted.
template <class T>
T at(const GgufFile& f, uint64_t offset) {
  return load<T>(f.base() + offset);
}

std::string str_at(const GgufFile& f, uint64_t offset) {
  uint64_t len = at<uint64_t>(f, offset);
  return std::string(reinterpret_cast<const char*>(f.base() + offset + 8), static_cast<size_t>(len));
}

[[noreturn]] void wrong_type(const GgufFile& f, const GgufKV& kv, const char* expected) {
  std::string got = vtype_name(kv.type);
  if (kv.type == GgufValueType::ARRAY) got = std::string("array of ") + vtype_name(kv.arr_type);
  f.fail("metadata key " + quoted(kv.key) + " has type " + got + ", expected " + expected);
}

int64_t int_at(const GgufFile& f, const GgufKV& kv, GgufValueType type, uint64_t offset) {
  switch (type) {
    case GgufValueType::U8: return at<uint8_t>(f, offset);
    case GgufValueType::I8: return at<int8_t>(f, offset);
    case GgufValueType::BOOL: return at<uint8_t>(f, offset) != 0;
    case GgufValueType::U16: return at<uint16_t>(f, offset);
    case GgufValueType::I16: return at<int16_t>(f, offset);
    case GgufValueType::U32: return at<uint32_t>(f, offset);
    case GgufValueType::I32: return at<int32_t>(f, offset);
    case GgufValueType::I64: return at<int64_t>(f, offset);
    case GgufValueType::U64: {
      uint64_t v = at<uint64_t>(f, offset);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        f.fail("metadata key " + quoted(kv.key) + " holds " + to_dec(v) +
               ", which does not fit in int64");
      }
      return static_cast<int64_t>(v);
    }
    default:
      wrong_type(f, kv, "an integer");
  }
}

double float_at(const GgufFile& f, const GgufKV& kv, GgufValueType type, uint64_t offset) {
  if (type == GgufValueType::F32) return at<float>(f, offset);
  if (type == GgufValueType::F64) return at<double>(f, offset);
  if (type == GgufValueType::U64) return static_cast<double>(at<uint64_t>(f, offset));
  if (is_integer(type)) return static_cast<double>(int_at(f, kv, type, offset));
  wrong_type(f, kv, "a number");
}

const GgufKV& require(const GgufFile& f, const std::string& key) {
  const GgufKV* kv = f.find_kv(key);
  if (!kv) f.fail("metadata key " + quoted(key) + " is missing");
  return *kv;
}

}  // namespace

// Bytes of a fixed-size value; 0 for STRING and ARRAY, whose size depends on their contents.
uint64_t gguf_value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}


// Fills a GgufFile from its mapping. A friend of GgufFile so the parse steps can stay out of
// the public header.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& f) : f_(f), c_(f, f.base_, f.size_, 0) {}

  void run() {
    parse_header();
    uint64_t n_tensors = c_.u64("tensor count");
    uint64_t n_kv = c_.u64("metadata entry count");
    check_counts(n_kv, n_tensors);
    for (uint64_t i = 0; i < n_kv; ++i) parse_kv(i);
    c_.set_context("");
    read_alignment();
    for (uint64_t i = 0; i < n_tensors; ++i) parse_tensor_info(i);
    c_.set_context("");
    uint64_t a = f_.alignment_;
    if (!checked_add(c_.pos(), a - 1, &f_.data_offset_)) f_.fail("data offset overflows");
    f_.data_offset_ &= ~(a - 1);
    place_tensors();
  }

 private:
  void parse_header() {
    uint64_t size = f_.size_;
    if (size < 4) {
      f_.fail("file too small to be GGUF (" + to_dec(size) + " bytes; the header alone is " +
              to_dec(kHeaderBytes) + ")");
    }
    uint32_t magic = c_.u32("magic");
    if (magic != kMagic) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "0x%08" PRIx32, magic);
      f_.fail(std::string("not a GGUF file: bad magic ") + buf +
              " (expected 0x46554747, \"GGUF\")");
    }
    if (size < kHeaderBytes) {
      f_.fail("truncated file: " + to_dec(size) + " bytes is smaller than the " +
              to_dec(kHeaderBytes) + "-byte GGUF header");
    }
    uint32_t v = c_.u32("version");
    f_.version_ = v;
    if (v == 2 || v == 3) return;
    if (v == 1) f_.fail("unsupported GGUF version 1 (only versions 2 and 3 are supported)");
    uint32_t swapped = __builtin_bswap32(v);
    if (swapped == 2 || swapped == 3) f_.fail("big-endian GGUF files are not supported");
    f_.fail("unsupported GGUF version " + to_dec(v) + " (only versions 2 and 3 are supported)");
  }

  // Both counts are refused up front when even the smallest encoding of that many entries
  // cannot fit in the rest of the file, so nothing is allocated or walked for a bogus count.
  void check_counts(uint64_t n_kv, uint64_t n_tensors) const {
    uint64_t left = c_.left();
    if (n_kv > left / kMinKvBytes) {
      f_.fail("header claims " + to_dec(n_kv) + " metadata entries, but the " + to_dec(left) +
              " bytes after the header hold at most " + to_dec(left / kMinKvBytes) +
              " (truncated or corrupt file)");
    }
    if (n_tensors > left / kMinTensorInfoBytes) {
      f_.fail("header claims " + to_dec(n_tensors) + " tensors, but the " + to_dec(left) +
              " bytes after the header hold at most " + to_dec(left / kMinTensorInfoBytes) +
              " tensor infos (truncated or corrupt file)");
    }
    // Each product is at most `left`, so the sum cannot overflow.
    if (n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > left) {
      f_.fail("header claims " + to_dec(n_kv) + " metadata entries and " + to_dec(n_tensors) +
              " tensors, more than the " + to_dec(left) +
              " bytes after the header can hold (truncated or corrupt file)");
    }
  }

  void parse_kv(uint64_t index) {
    c_.set_context("metadata entry #" + to_dec(index));
    GgufKV kv;
    kv.key = c_.str("key");
    c_.set_context("metadata key " + quoted(kv.key));
    kv.type = read_value_type(c_, "value type");
    if (kv.type == GgufValueType::ARRAY) {
      read_array_header(c_, &kv.arr_type, &kv.arr_count);
      kv.offset = c_.pos();
      // Walk the elements now so that later decoding can trust every length inside.
      uint64_t size = gguf_value_size(kv.arr_type);
      if (size != 0) {
        c_.skip(kv.arr_count * size, "array elements");  // count <= left / size
      } else {
        for (uint64_t i = 0; i < kv.arr_count; ++i) skip_value(c_, kv.arr_type, 1);
      }
    } else {
      kv.offset = c_.pos();
      skip_value(c_, kv.type, 0);
    }
    auto ins = f_.kv_index_.emplace(kv.key, f_.kvs_.size());
    if (!ins.second) {
      f_.fail("duplicate metadata key " + quoted(kv.key) + " (entries #" +
              to_dec(ins.first->second) + " and #" + to_dec(index) + ")");
    }
    f_.kvs_.push_back(std::move(kv));
  }

  void read_alignment() {
    const GgufKV* kv = f_.find_kv("general.alignment");
    if (!kv) {
      f_.alignment_ = kDefaultAlignment;
      return;
    }
    if (kv->type != GgufValueType::U32) {
      f_.fail(std::string("metadata key 'general.alignment' has type ") + vtype_name(kv->type) +
              ", expected uint32");
    }
    uint64_t a = at<uint32_t>(f_, kv->offset);
    if (a == 0 || (a & (a - 1)) != 0) {
      f_.fail("metadata key 'general.alignment' is " + to_dec(a) +
              ", which is not a nonzero power of two");
    }
    f_.alignment_ = a;
  }

  void parse_tensor_info(uint64_t index) {
    c_.set_context("tensor info #" + to_dec(index));
    GgufTensorInfo t;
    t.name = c_.str("tensor name");
    c_.set_context("tensor " + quoted(t.name));
    t.n_dims = c_.u32("n_dims");
    if (t.n_dims < 1 || t.n_dims > kMaxDims) {
      c_.fail("n_dims " + to_dec(t.n_dims) + " is out of range 1.." + to_dec(kMaxDims));
    }
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      uint64_t ne = c_.u64("dimension");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c_.fail("ne[" + to_dec(d) + "] = " + std::to_string(static_cast<int64_t>(ne)) +
                " is negative");
      }
      t.ne[d] = static_cast<int64_t>(ne);
    }
    t.type = c_.u32("ggml type");
    uint64_t rel_offset = c_.u64("data offset");
    t.nbytes = tensor_nbytes(t);
    if (rel_offset % f_.alignment_ != 0) {
      c_.fail("data offset " + to_dec(rel_offset) + " is not a multiple of the alignment " +
              to_dec(f_.alignment_));
    }
    t.offset = rel_offset;  // made absolute once the data section's start is known
    auto ins = f_.tensor_index_.emplace(t.name, f_.tensors_.size());
    if (!ins.second) {
      f_.fail("duplicate tensor name " + quoted(t.name) + " (tensor infos #" +
              to_dec(ins.first->second) + " and #" + to_dec(index) + ")");
    }
    f_.tensors_.push_back(std::move(t));
  }

  // Checks the type and shape and returns the data size.
  uint64_t tensor_nbytes(const GgufTensorInfo& t) const {
    const TypeTraits* tt = ref_type_traits(t.type);
    if (!tt) c_.fail("unknown ggml type id " + to_dec(t.type));
    // Users multiply dims in any order (n_elements(), ne1*ne2 for row counts...), so the
    // product of the nonzero dims must fit in int64; then every partial product does.
    uint64_t n = 1;
    for (uint32_t d = 0; d < kMaxDims; ++d) {
      uint64_t ne = static_cast<uint64_t>(t.ne[d]);
      if (ne == 0) continue;
      if (!checked_mul(n, ne, &n) || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c_.fail("element count of shape " + dims_text(t) + " overflows int64");
      }
    }
    uint64_t blck = static_cast<uint64_t>(tt->blck_size);
    if (static_cast<uint64_t>(t.ne[0]) % blck != 0) {
      c_.fail("ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + tt->name +
              " block size " + to_dec(blck));
    }
    uint64_t rows = static_cast<uint64_t>(t.ne[1]) * static_cast<uint64_t>(t.ne[2]) *
                    static_cast<uint64_t>(t.ne[3]);  // fits: bounded by the checked product
    uint64_t row = 0, nbytes = 0;
    if (!checked_mul(static_cast<uint64_t>(t.ne[0]) / blck, tt->type_size, &row) ||
        !checked_mul(row, rows, &nbytes)) {
      c_.fail("data size of " + std::string(tt->name) + " shape " + dims_text(t) +
              " overflows 64 bits");
    }
    return nbytes;
  }

  // Makes tensor offsets absolute and checks that each tensor's data lies inside the file and
  // that no two tensors share bytes.
  void place_tensors() {
    const uint64_t data = f_.data_offset_, size = f_.size_;
    for (GgufTensorInfo& t : f_.tensors_) {
      uint64_t abs = 0, end = 0;
      if (!checked_add(data, t.offset, &abs) || !checked_add(abs, t.nbytes, &end)) {
        f_.fail("tensor " + quoted(t.name) + ": data offset " + to_dec(t.offset) + " + " +
                to_dec(t.nbytes) + " bytes (relative to the data section at " + to_dec(data) +
                ") runs past the end of the file (size " + to_dec(size) + ")");
      }
      if (end > size) {
        f_.fail("tensor " + quoted(t.name) + ": data [" + to_dec(abs) + ", " + to_dec(end) +
                ") runs past the end of the file (size " + to_dec(size) + ")");
      }
      t.offset = abs;
    }
    std::vector<const GgufTensorInfo*> by_offset;
    by_offset.reserve(f_.tensors_.size());
    for (const GgufTensorInfo& t : f_.tensors_) {
      if (t.nbytes != 0) by_offset.push_back(&t);  // an empty range overlaps nothing
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& a = *by_offset[i - 1];
      const GgufTensorInfo& b = *by_offset[i];
      if (b.offset < a.offset + a.nbytes) {
        f_.fail("tensors " + quoted(a.name) + " [" + to_dec(a.offset) + ", " +
                to_dec(a.offset + a.nbytes) + ") and " + quoted(b.name) + " [" +
                to_dec(b.offset) + ", " + to_dec(b.offset + b.nbytes) + ") overlap");
      }
    }
  }

  GgufFile& f_;
  Cursor c_;
};

void GgufFile::fail(const std::string& what) const { throw GgufError(path_ + ": " + what); }

GgufFile::GgufFile(const std::string& path) : path_(path) {
  // The destructor does not run when a constructor throws, so undo the mapping here.
  try {
    map_file();
    GgufParser(*this).run();
  } catch (...) {
    release();
    throw;
  }
}

GgufFile::~GgufFile() { release(); }

void GgufFile::release() noexcept {
  if (base_) munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_));
  base_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void GgufFile::map_file() {
  fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(os_error("cannot open"));
  struct stat st;
  if (fstat(fd_, &st) != 0) fail(os_error("cannot stat"));
  if (S_ISDIR(st.st_mode)) fail("cannot read: is a directory, not a GGUF file");
  if (!S_ISREG(st.st_mode)) fail("cannot read: not a regular file");
  // mmap refuses a zero length, and an empty file deserves its own message anyway.
  if (st.st_size <= 0) fail("empty file (0 bytes), not a GGUF file");
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > std::numeric_limits<size_t>::max()) fail("file is too large to map");
  void* p = mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_PRIVATE, fd_, 0);
  if (p == MAP_FAILED) fail(os_error("cannot mmap"));
  base_ = static_cast<const uint8_t*>(p);
  // The mapping holds its own reference to the file: no descriptor needs to stay open.
  close(fd_);
  fd_ = -1;
}

const GgufKV* GgufFile::find_kv(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second];
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

int64_t GgufFile::kv_int(const GgufKV& kv) const {
  if (!is_integer(kv.type)) wrong_type(*this, kv, "an integer");
  return int_at(*this, kv, kv.type, kv.offset);
}

double GgufFile::kv_float(const GgufKV& kv) const {
  if (!is_number(kv.type)) wrong_type(*this, kv, "a number");
  return float_at(*this, kv, kv.type, kv.offset);
}

std::string GgufFile::kv_str(const GgufKV& kv) const {
  if (kv.type != GgufValueType::STRING) wrong_type(*this, kv, "a string");
  return str_at(*this, kv.offset);
}

std::vector<GgufKV> GgufFile::array_elements(const GgufKV& arr) const {
  if (arr.type != GgufValueType::ARRAY) wrong_type(*this, arr, "an array");
  std::vector<GgufKV> out;
  out.reserve(static_cast<size_t>(arr.arr_count));  // validated against the file size
  Cursor c(*this, base_, size_, arr.offset);
  for (uint64_t i = 0; i < arr.arr_count; ++i) {
    GgufKV e;
    e.type = arr.arr_type;
    if (e.type == GgufValueType::ARRAY) {
      read_array_header(c, &e.arr_type, &e.arr_count);
      e.offset = c.pos();
      for (uint64_t j = 0; j < e.arr_count; ++j) skip_value(c, e.arr_type, 2);
    } else {
      e.offset = c.pos();
      skip_value(c, e.type, 0);
    }
    out.push_back(std::move(e));
  }
  return out;
}

int64_t GgufFile::get_int(const std::string& key) const { return kv_int(require(*this, key)); }

int64_t GgufFile::get_int(const std::string& key, int64_t dflt) const {
  const GgufKV* kv = find_kv(key);
  return kv ? kv_int(*kv) : dflt;
}

double GgufFile::get_float(const std::string& key) const { return kv_float(require(*this, key)); }

double GgufFile::get_float(const std::string& key, double dflt) const {
  const GgufKV* kv = find_kv(key);
  return kv ? kv_float(*kv) : dflt;
}

std::string GgufFile::get_str(const std::string& key) const { return kv_str(require(*this, key)); }

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufKV& kv = require(*this, key);
  if (kv.type != GgufValueType::ARRAY || !is_integer(kv.arr_type)) {
    wrong_type(*this, kv, "an array of integers");
  }
  uint64_t size = gguf_value_size(kv.arr_type);
  std::vector<int64_t> out(static_cast<size_t>(kv.arr_count));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = int_at(*this, kv, kv.arr_type, kv.offset + i * size);
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufKV& kv = require(*this, key);
  if (kv.type != GgufValueType::ARRAY || !is_number(kv.arr_type)) {
    wrong_type(*this, kv, "an array of numbers");
  }
  uint64_t size = gguf_value_size(kv.arr_type);
  std::vector<double> out(static_cast<size_t>(kv.arr_count));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = float_at(*this, kv, kv.arr_type, kv.offset + i * size);
  }
  return out;
}

std::vector<std::string> GgufFile::get_str_array(const std::string& key) const {
  const GgufKV& kv = require(*this, key);
  if (kv.type != GgufValueType::ARRAY || kv.arr_type != GgufValueType::STRING) {
    wrong_type(*this, kv, "an array of strings");
  }
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(kv.arr_count));
  uint64_t off = kv.offset;
  for (uint64_t i = 0; i < kv.arr_count; ++i) {
    out.push_back(str_at(*this, off));
    off += 8 + at<uint64_t>(*this, off);
  }
  return out;
}

const char* GgufFile::value_type_name(GgufValueType t) { return vtype_name(t); }

}  // namespace q35
