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
