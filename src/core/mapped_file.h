// A read-only memory map of a whole file. Model weights are used in place from here: the kernels
// read the mapped pages directly, so resident memory grows only with what is actually touched.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace duan {

class MappedFile {
public:
    MappedFile() = default;
    // Throws duan::Error naming the path and the OS error.
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(MappedFile&& o) noexcept;
    MappedFile& operator=(MappedFile&& o) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace duan
