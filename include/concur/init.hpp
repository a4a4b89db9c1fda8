// SPDX-License-Identifier: BSL-1.0
// concur::init(argc, argv): call first thing in main().
//
// It records how this program was started, so executors that re-launch it
// (processes) can do so. In a copy of the program launched as a worker
// process it never returns: it serves registered calls sent by the parent
// and exits when the parent closes the connection or dies. So everything
// main() does before init() also runs in every worker: put nothing there.
#pragma once

namespace concur {

void init(int argc, char** argv);

/// The path of this program's executable as given to init() (empty before).
const char* program_path() noexcept;

/// True once init() has run in this process.
bool initialized() noexcept;

}  // namespace concur
