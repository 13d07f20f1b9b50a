# Cross-compiling duan for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu; the binaries run
# on the build machine under qemu-user (qemu-user-static), which CMake uses as the emulator for
# gtest_discover_tests and try_run.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DGTest_DIR=<aarch64 gtest prefix>/lib/cmake/GTest -Dnlohmann_json_DIR=<shim dir>
#
# .ci/aarch64.sh does all of this, including building GoogleTest for aarch64 from Debian's
# googletest sources and a config shim for the header-only nlohmann-json.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(DUAN_AARCH64_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${DUAN_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${DUAN_AARCH64_TRIPLE}-g++)

# The target's libraries and headers live under /usr/aarch64-linux-gnu; build tools come from the
# host. Packages are searched both there and at the paths given explicitly (GTest_DIR etc.), so
# the cross-built GoogleTest (an ordinary prefix outside the sysroot) is found, never the host's.
# The host root comes last, for arch-independent packages (header-only CLI11 / nlohmann-json configs
# in /usr/share/cmake) and Debian multiarch arm64 libraries (/usr/lib/aarch64-linux-gnu); host
# x86 libraries live in /usr/lib/x86_64-linux-gnu, which a search for aarch64 never visits.
set(CMAKE_FIND_ROOT_PATH /usr/${DUAN_AARCH64_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Extra target libraries unpacked from arm64 .debs (dpkg -x) into a private directory (see
# .ci/aarch64.sh): its headers come before the host's /usr/include (which the Debian cross
# compiler also searches, last), its libraries are found by find_library / pkg-config, linked
# with -L and found at run time through the build rpath (DT_RPATH via --disable-new-dtags: unlike
# DT_RUNPATH it also applies to libcpp-httplib's own dependencies, libssl etc.).
set(DUAN_AARCH64_EXTRA_SYSROOT "" CACHE PATH "Unpacked arm64 library packages (optional)")
if(DUAN_AARCH64_EXTRA_SYSROOT)
  set(_x "${DUAN_AARCH64_EXTRA_SYSROOT}")
  set(_xlib "${_x}/usr/lib/${DUAN_AARCH64_TRIPLE}")
  set(_xlib2 "${_x}/lib/${DUAN_AARCH64_TRIPLE}")  # libz.so.1
  list(APPEND CMAKE_FIND_ROOT_PATH "${_x}")
  string(APPEND CMAKE_C_FLAGS_INIT " -isystem ${_x}/usr/include/${DUAN_AARCH64_TRIPLE} -isystem ${_x}/usr/include")
  string(APPEND CMAKE_CXX_FLAGS_INIT " -isystem ${_x}/usr/include/${DUAN_AARCH64_TRIPLE} -isystem ${_x}/usr/include")
  string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT
         " -L${_xlib} -Wl,-rpath-link,${_xlib} -Wl,-rpath-link,${_xlib2} -Wl,--disable-new-dtags")
  set(CMAKE_BUILD_RPATH "${_xlib};${_xlib2}")
  set(ENV{PKG_CONFIG_LIBDIR} "${_xlib}/pkgconfig:${_x}/usr/share/pkgconfig")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${_x}")
endif()

list(APPEND CMAKE_FIND_ROOT_PATH /)

# Run target binaries (test discovery) under qemu with the target's dynamic loader and libc.
find_program(DUAN_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(DUAN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${DUAN_QEMU_AARCH64};-L;/usr/${DUAN_AARCH64_TRIPLE})
endif()
