// cpp-httplib, included with the configuration Debian's libcpp-httplib.so was built with (OpenSSL,
// zlib, brotli): the class layouts depend on these macros, so every includer must agree with the
// shared library. Include httplib only through this header.
#pragma once
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#endif
#include <httplib.h>
#include <sys/socket.h>

namespace duan::serve {

// httplib 0.11 listens with a backlog of 5: a burst of connections overflows it, their SYNs are
// dropped and, once retransmitted a second later, the connections fail. Install before binding;
// call relisten() after a successful bind to listen again with a real backlog. Also sets
// SO_REUSEADDR (httplib's default options would add SO_REUSEPORT, which lets another process
// bind the same port: not wanted).
class ListenBacklog {
  public:
    explicit ListenBacklog(httplib::Server& s) {
        s.set_socket_options([this](socket_t sock) {
            int yes = 1;
            ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
            fd_ = sock;
        });
    }
    void relisten(int backlog = 1024) {
        if (fd_ >= 0) ::listen(fd_, backlog);
    }

  private:
    socket_t fd_ = -1;
};

}  // namespace duan::serve
