# SPDX-License-Identifier: BSL-1.0
# Every dependency comes from a Debian 12 package (see cmake/install-deps.sh);
# nothing is vendored or downloaded.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS headers fiber context json mpi serialization)
find_package(fmt REQUIRED CONFIG)
find_package(tomlplusplus REQUIRED CONFIG)
find_package(TBB REQUIRED CONFIG)
find_package(CURL 7.84 REQUIRED)  # concur::http (multi-socket, curl_multi_wakeup)
