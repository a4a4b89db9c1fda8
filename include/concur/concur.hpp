// SPDX-License-Identifier: BSL-1.0
// The whole public API of concur::concur: every header of include/concur/
// but concur/fake_llm.hpp, which belongs to the separate concur::fake_llm
// library (the loopback test server), and detail/ (internals).
#pragma once

#include "concur/call.hpp"
#include "concur/cancel.hpp"
#include "concur/codec.hpp"
#include "concur/completion_stream.hpp"
#include "concur/condition.hpp"
#include "concur/config.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/gather.hpp"
#include "concur/http.hpp"
#include "concur/init.hpp"
#include "concur/llm.hpp"
#include "concur/llm_call.hpp"
#include "concur/log.hpp"
#include "concur/options.hpp"
#include "concur/processes.hpp"
#include "concur/progress.hpp"
#include "concur/queue.hpp"
#include "concur/race.hpp"
#include "concur/registry.hpp"
#include "concur/result.hpp"
#include "concur/sleep.hpp"
#include "concur/sync.hpp"
#include "concur/task.hpp"
#include "concur/task_group.hpp"
#include "concur/trace.hpp"
