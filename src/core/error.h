// duan::Error — the one exception type of the engine. Every message names what went wrong and
// where (file, byte offset, key or tensor name), so a user can act on it without a debugger.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace duan {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// fail("file ", path, ": bad magic at offset ", off) — builds the message from any streamable parts.
template <typename... Args>
[[noreturn]] void fail(const Args&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    throw Error(os.str());
}

}  // namespace duan
