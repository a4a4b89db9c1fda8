// The whole public API of concur.
#pragma once

#include "concur/call.hpp"
#include "concur/cancel.hpp"
#include "concur/config.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/gather.hpp"
#include "concur/init.hpp"
#include "concur/options.hpp"
#include "concur/processes.hpp"
#include "concur/queue.hpp"
#include "concur/registry.hpp"
#include "concur/result.hpp"
#include "concur/sleep.hpp"
#include "concur/sync.hpp"
#include "concur/task.hpp"
#include "concur/task_group.hpp"
