// concur::init(argc, argv): call first thing in main().
//
// It records how this program was started, so executors that re-launch it
// (processes) can do so; in a launched worker it serves calls and exits.
#pragma once

namespace concur {

void init(int argc, char** argv);

/// The path of this program's executable as given to init() (empty before).
const char* program_path() noexcept;

}  // namespace concur
