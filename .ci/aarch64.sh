#!/usr/bin/env bash
# CI step: cross-build duan for aarch64 and run the test suite under qemu-user, on emulated CPUs
# with and without the dotprod / i8mm extensions, so every NEON kernel path runs:
#   -cpu max         dotprod + i8mm + fp16: the whole suite but 23 end-to-end SD tests (listed in
#                    QEMU_SLOW below), then the SD stage tests on their own (active ISA = i8mm; the
#                    kernel tests also check the neon and dotprod tables against the scalar
#                    reference)
#   -cpu cortex-a76  dotprod + fp16, no i8mm: kernel, SIMD and golden tests (detection picks
#                    "dotprod")
#   -cpu cortex-a72  plain ARMv8.0 NEON: kernel, SIMD and golden tests (detection picks "neon";
#                    proves no dotprod or fp16 instruction leaks into the baseline path)
# Each run is split into $JOBS gtest shards side by side.
#
# Needs (Debian packages): g++-aarch64-linux-gnu, qemu-user-static, googletest (sources in
# /usr/src/googletest, built here for aarch64 into a cache dir), nlohmann-json3-dev (header-only:
# the host's headers are used through a small CMake config shim), and the arm64 builds of
# cpp-httplib / OpenSSL / zlib / brotli (downloaded as .debs and unpacked into a cache dir).
#
# Environment:
#   DUAN_AARCH64_BUILD   build dir (default build-aarch64; the gtest build is cached inside it)
#   DUAN_AARCH64_FILTER  gtest filter for the full-suite run (default: all but the SD stage tests,
#                        which the "sd" step runs, and QEMU_SLOW; the CLI tests start the aarch64
#                        duan binary through qemu too, see CMakeLists.txt)
#   DUAN_AARCH64_KERNEL_FILTER  gtest filter for the per-CPU kernel runs
#                        (default Kernels*:*Simd*:*Golden*: kernels vs scalar and the goldens)
#   DUAN_AARCH64_CPUS    CPUs for the kernel runs (default "cortex-a76 cortex-a72")
#   DUAN_AARCH64_SD_FILTER  gtest filter for the SD stage run on -cpu max (default: the stage
#                        tests against the reference's dumps)
#   DUAN_AARCH64_STEPS   any of "deps build full sd kernels" (default "build full sd kernels";
#                        build implies deps)
#   JOBS                 parallel build jobs (default nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DUAN_AARCH64_BUILD:-$ROOT/build-aarch64}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
JOBS="${JOBS:-$(nproc)}"
STEPS="${DUAN_AARCH64_STEPS:-build full sd kernels}"
TOOLCHAIN="$ROOT/cmake/aarch64-linux-gnu.cmake"
SYSROOT=/usr/aarch64-linux-gnu
QEMU="$(command -v qemu-aarch64-static || command -v qemu-aarch64)"
export QEMU_LD_PREFIX="$SYSROOT"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }
has_step() { [[ " $STEPS " == *" $1 "* ]]; }

DEPS="$BUILD/deps"
GTEST_PREFIX="$DEPS/gtest"
JSON_SHIM="$DEPS/nlohmann_json"

# Target (arm64) builds of the libraries the engine links besides libc/libstdc++ (cpp-httplib
# and what its Debian build needs: OpenSSL, zlib, brotli). Downloaded with apt-get download and
# unpacked into a private sysroot (dpkg -x): nothing is installed on the build machine. Needs the
# arm64 package lists once: dpkg --add-architecture arm64 && apt-get update (done here as root).
ARM64_DEBS=(libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 zlib1g-dev zlib1g
    libbrotli-dev libbrotli1)
EXTRA_SYSROOT="$DEPS/sysroot"

build_sysroot() {
    [[ -f "$EXTRA_SYSROOT/.complete" ]] && return
    step "arm64 library packages into $EXTRA_SYSROOT"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        [[ $(id -u) == 0 ]] || { echo "need: dpkg --add-architecture arm64 && apt-get update" >&2; exit 1; }
        dpkg --add-architecture arm64
        apt-get update -qq
    fi
    local dl="$DEPS/debs"
    rm -rf "$dl" "$EXTRA_SYSROOT"
    mkdir -p "$dl" "$EXTRA_SYSROOT"
    (cd "$dl" && apt-get download "${ARM64_DEBS[@]/%/:arm64}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
    for deb in "$dl"/*.deb; do dpkg -x "$deb" "$EXTRA_SYSROOT"; done
    touch "$EXTRA_SYSROOT/.complete"
}

build_deps() {
    build_sysroot
    if [[ ! -f "$GTEST_PREFIX/lib/cmake/GTest/GTestConfig.cmake" ]]; then
        step "GoogleTest for aarch64 from /usr/src/googletest"
        cmake -S /usr/src/googletest -B "$DEPS/gtest-build" "${GEN[@]}" \
            -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_INSTALL_PREFIX="$GTEST_PREFIX" -DBUILD_GMOCK=OFF -DINSTALL_GTEST=ON >/dev/null
        cmake --build "$DEPS/gtest-build" -j "$JOBS"
        cmake --install "$DEPS/gtest-build" >/dev/null
    fi
    # nlohmann-json is header-only. The host package's config would add -isystem /usr/include
    # (host glibc headers) to the cross build, so point a shim at a directory holding only the
    # nlohmann/ headers.
    if [[ ! -f "$JSON_SHIM/nlohmann_jsonConfig.cmake" ]]; then
        mkdir -p "$JSON_SHIM/include"
        ln -sfn /usr/include/nlohmann "$JSON_SHIM/include/nlohmann"
        local version
        version="$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")/\1/p' \
            /usr/share/cmake/nlohmann_json/nlohmann_jsonConfigVersion.cmake)"
        cat >"$JSON_SHIM/nlohmann_jsonConfig.cmake" <<CFG
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "$JSON_SHIM/include")
endif()
CFG
        cat >"$JSON_SHIM/nlohmann_jsonConfigVersion.cmake" <<CFG
set(PACKAGE_VERSION "${version:-3.0.0}")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
CFG
    fi
}

if has_step deps || has_step build; then
    build_deps
fi
if has_step build; then
    # The unpacked arm64 headers/libraries. Given through the environment and link flags, so that
    # an existing build dir (configured before the sysroot existed) needs no full rebuild; the
    # toolchain file adds the same -isystem flags on a fresh configure.
    XLIB="$EXTRA_SYSROOT/usr/lib/aarch64-linux-gnu"
    export CPLUS_INCLUDE_PATH="$EXTRA_SYSROOT/usr/include/aarch64-linux-gnu:$EXTRA_SYSROOT/usr/include"
    export C_INCLUDE_PATH="$CPLUS_INCLUDE_PATH"
    step "configure + build duan_tests for aarch64"
    cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
        -DCMAKE_BUILD_TYPE=Release -DGTest_DIR="$GTEST_PREFIX/lib/cmake/GTest" \
        -Dnlohmann_json_DIR="$JSON_SHIM" -DDUAN_AARCH64_EXTRA_SYSROOT="$EXTRA_SYSROOT" \
        -DCMAKE_EXE_LINKER_FLAGS="-L$XLIB -Wl,-rpath-link,$XLIB -Wl,-rpath-link,$EXTRA_SYSROOT/lib/aarch64-linux-gnu -Wl,--disable-new-dtags" \
        >/dev/null
    time cmake --build "$BUILD" --target duan_tests -j "$JOBS"
fi

status=0
summary=()
# run_tests cpu filter: duan_tests under qemu -cpu <cpu>, split into $JOBS gtest shards run side
# by side (qemu-user is single-threaded per guest thread; the machine has $JOBS cores). Runs every
# CPU even after a failure and fails the step at the end.
run_tests() {
    local cpu="$1" filter="$2" rc=0 t0=$SECONDS pids=() k
    local logs="$BUILD/qemu-logs/$cpu"
    step "duan_tests under qemu -cpu $cpu (filter $filter, $JOBS shards)"
    rm -rf "$logs" && mkdir -p "$logs"
    for ((k = 0; k < JOBS; ++k)); do
        GTEST_TOTAL_SHARDS=$JOBS GTEST_SHARD_INDEX=$k QEMU_CPU="$cpu" \
            DUAN_SD_CKPT_DIR="$BUILD/sd-checkpoints" \
            "$QEMU" -cpu "$cpu" "$BUILD/duan_tests" --gtest_filter="$filter" --gtest_brief=1 \
            >"$logs/shard$k.log" 2>&1 &
        pids+=($!)
    done
    for ((k = 0; k < JOBS; ++k)); do
        local r=0
        wait "${pids[$k]}" || r=$?
        echo "--- shard $k (rc $r)"
        cat "$logs/shard$k.log"
        ((r == 0)) || rc=$r
    done
    summary+=("qemu -cpu $cpu ($filter): $([[ $rc == 0 ]] && echo passed || echo "FAILED (rc $rc)") in $((SECONDS - t0)) s")
    [[ $rc == 0 ]] || status=1
}

# The SD stages against the reference's dumps (tokens, RNG, schedule, sampler, CLIP text encoder,
# UNet eps, VAE decode): the NEON/i8mm numerics of every SD component, a few minutes under qemu.
SD_STAGES="SdTokenizer*:SdRng*:SdSchedule*:SdSampler*:SdModel*"
# End-to-end SD runs (whole txt2img/img2img pipelines, servers generating images) left out of the
# emulated run: under qemu each costs 1-3 minutes (about 50x x86: a 4-step 64x64 generation takes
# 20 s of sampling), all of them ~60 CPU-minutes, which CI's 90 minutes cannot hold. Their numerics
# are the SD stages' above; their logic (requests, errors, files, cancel) is architecture-neutral
# and runs natively in the release and ASan builds. Every other SD and serve test runs here (the
# request/error/format tests, the SD2/SDXL load-and-run tests, OpenCLIP vs its numpy reference).
QEMU_SLOW="SdDiffusers.SameLatentAsSingleFile:SdGguf.QuantizedRunsCloseToF32:\
SdImg2Img.CliRunsImg2Img:SdImg2Img.EndToEndIsDeterministic:SdImg2Img.StrengthZeroReturnsTheInitLatent:\
SdMemory.ReleasedWeightsReadBack:SdMemory.TiledVaeDecode:SdPipeline.EulerAncestralCudaRngF32:\
SdPipeline.EulerCpuF16:SdPipeline.EulerCpuF32:SdPipeline.OtherSamplersRun:\
SdSynth.NarrowSd1RunsPromptToImage:SdVaeEncoder.MatchesNumpyReference:SdVaeEncoder.RoundTripIsSane:\
SdVariants.Sd2PromptToImage:SdVariants.SdxlPromptToImage:ServeImages.CliSplitMatchesLocal:\
ServeImages.HttpErrorsAre400NotServerErrors:ServeImages.SdxlSplitUsesItsScaleAndTheDeviceChecksIt:\
ServeImages.SplitVaeGivesTheLocalImage:ServeImagesCancel.ClientDisconnectStopsTheGeneration:\
ServeImagesImg2Img.MultipartEditsEndpoint:ServeImagesImg2Img.ServerMatchesLocalRun"
if has_step full; then
    # DUAN_AARCH64_FILTER='*' runs everything here (about 30 more minutes on 2 cores).
    run_tests max "${DUAN_AARCH64_FILTER:-*-$SD_STAGES:$QEMU_SLOW}"
fi
if has_step sd; then
    run_tests max "${DUAN_AARCH64_SD_FILTER:-$SD_STAGES}"
fi
if has_step kernels; then
    for cpu in ${DUAN_AARCH64_CPUS:-cortex-a76 cortex-a72}; do
        run_tests "$cpu" "${DUAN_AARCH64_KERNEL_FILTER:-Kernels*:*Simd*:*Golden*}"
    done
fi
if ((${#summary[@]})); then
    step "summary"
    printf '%s\n' "${summary[@]}"
fi
exit $status
