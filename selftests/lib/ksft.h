/* SPDX-License-Identifier: MIT */
/*
 * A kselftest-compatible harness of our own: TAP 13 output and kselftest exit
 * codes, so the programs in selftests/ read the same under the kernel's
 * runner.sh as the upstream KVM selftests do.
 *
 *   ksft_print_header();  ksft_set_plan(n);
 *   ksft_test_result(cond, "rule 7: read -> EINVAL");   // "ok N ..." / "not ok N ..."
 *   ksft_test_result_skip("rule 18: no THP");            // "ok N # SKIP ..."
 *   return ksft_finished();                               // 0 pass, 1 fail
 *
 * TEST_REQUIRE(expr) before the plan prints "1..0 # SKIP ..." and exits 4.
 * TEST_ASSERT(expr, fmt, ...) prints an assertion report and exits 254 (the KVM
 * selftests convention for a broken precondition, distinct from a failed check).
 */
#ifndef KVMLIKE_SELFTESTS_KSFT_H
#define KVMLIKE_SELFTESTS_KSFT_H

#include <stdbool.h>

#define KSFT_PASS 0
#define KSFT_FAIL 1
#define KSFT_XFAIL 2
#define KSFT_XPASS 3
#define KSFT_SKIP 4
#define KSFT_ASSERT_EXIT 254

void ksft_print_header(void);
void ksft_set_plan(unsigned int plan);
void ksft_print_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ksft_test_result_pass(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ksft_test_result_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ksft_test_result_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* pass if cond, else fail; returns cond */
bool ksft_test_result(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* prints totals; returns KSFT_PASS when every planned test passed or skipped */
int ksft_finished(void);
void ksft_exit_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void ksft_exit_fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void ksft_assert_fail(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));

#define TEST_ASSERT(e, fmt, ...)                                                   \
	do {                                                                        \
		if (!(e))                                                           \
			ksft_assert_fail(__FILE__, __LINE__, #e, fmt, ##__VA_ARGS__); \
	} while (0)

#define TEST_REQUIRE(e)                                                   \
	do {                                                               \
		if (!(e))                                                  \
			ksft_exit_skip("Requirement not met: %s", #e);     \
	} while (0)

#endif
