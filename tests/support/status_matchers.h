// ASSERT_OK / EXPECT_OK for every suite: pass a Status or a Result<T>; on
// failure the message names the expression and carries the Status (code and
// message), which a bare ASSERT_TRUE(x.ok()) loses. Extra context streams in
// as with any gtest assertion: ASSERT_OK(r) << "key " << k.ToHex();
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "kvstore/status.h"

namespace kvstore::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// The store's Status/Result, or any other status-like value with ok() and
// message() (the kernels' own Status, which does not link the base library).
template <typename T>
std::string DescribeStatus(const T& value) {
  if constexpr (requires { StatusOf(value); }) {
    return StatusOf(value).ToString();
  } else {
    return value.message();
  }
}

template <typename T>
::testing::AssertionResult IsOk(const char* expr, const T& value) {
  bool ok;
  if constexpr (requires { StatusOf(value); }) {
    ok = StatusOf(value).ok();
  } else {
    ok = value.ok();
  }
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is not OK: " << DescribeStatus(value);
}

}  // namespace kvstore::testing

#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::kvstore::testing::IsOk, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::kvstore::testing::IsOk, expr)
