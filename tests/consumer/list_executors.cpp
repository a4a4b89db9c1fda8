// SPDX-License-Identifier: BSL-1.0
// Prints concur::executor_names(), one a line, so the consumer test runs the
// README example under every executor the installed library offers.
#include <concur/concur.hpp>

#include <iostream>

int main() {
  for (std::string_view name : concur::executor_names()) std::cout << name << '\n';
}
