// GGUF v3 writer. Streams: the header (metadata + tensor table) is written first from the declared
// tensor shapes and types, then each tensor's bytes are appended in order, so a quantizer never
// holds the whole model in memory. Output goes to "<path>.tmp" and is renamed into place on
// finish(), so a failure (e.g. a full disk) never leaves a truncated file under the final name.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "format/gguf.h"

namespace duan::gguf {

// Usage: meta().set(...); add_tensor(...) for each tensor; begin_data(); write_tensor_data(...) in
// the same order; finish(). A metadata-only file (e.g. a vocabulary) may call finish() directly.
// `alignment` (a power of two) is authoritative: begin_data() writes it as general.alignment when
// it differs from 32 or when the metadata already has that key (e.g. copied from another file).
class Writer {
  public:
    explicit Writer(std::string path, uint64_t alignment = 32);
    ~Writer();  // removes the temporary file if finish() was not reached
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    Metadata& meta() { return meta_; }
    // Declare a tensor (before begin_data()). ne[0] is the row length.
    void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne);
    // Writes the header; after this, write_tensor_data() must be called once per tensor, in order
    // (the first write_tensor_data() or finish() calls it if needed).
    void begin_data();
    void write_tensor_data(const std::string& name, const void* data, size_t n_bytes);
    // Flushes, fsyncs and renames into place. Throws on any I/O error (naming path and errno).
    void finish();

  private:
    std::string path_, tmp_path_;
    uint64_t alignment_;
    Metadata meta_;
    std::vector<TensorInfo> tensors_;
    std::FILE* f_ = nullptr;
    size_t next_tensor_ = 0;
    uint64_t data_pos_ = 0;
    bool began_ = false;  // the temporary file exists
    bool finished_ = false;

    void write_bytes(const void* p, size_t n);
};

}  // namespace duan::gguf
