// The shared temporary directory (tests/unit/temp_dir.h), named parley-auth-*.
#pragma once

#include "tests/unit/temp_dir.h"

namespace parley::broker::auth::testing {

class TempDir : public parley::testing::TempDir {
 public:
  TempDir() : parley::testing::TempDir("auth") {}
};

}  // namespace parley::broker::auth::testing
