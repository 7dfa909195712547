// ASSERT_OK / EXPECT_OK for every suite: pass a Status or a Result<T>; on
// failure the message names the expression and carries the Status (code and
// message), which a bare ASSERT_TRUE(x.ok()) loses. Extra context streams in
// as with any gtest assertion: ASSERT_OK(r) << "key " << k.ToHex();
#pragma once

#include <gtest/gtest.h>

#include "kvstore/status.h"

namespace kvstore::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

template <typename T>
::testing::AssertionResult IsOk(const char* expr, const T& value) {
  const Status& s = StatusOf(value);
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is not OK: " << s.ToString();
}

}  // namespace kvstore::testing

#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::kvstore::testing::IsOk, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::kvstore::testing::IsOk, expr)
